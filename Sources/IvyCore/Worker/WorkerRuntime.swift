// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import Synchronization

/// Runs registered tasks from one or more queues until stopped: the engine of ``IvyWorker``.
///
/// One reserver per queue takes messages in batches no larger than the free concurrency and
/// starts a task per message straight away. The task decodes the message, runs the task body
/// and settles the message (ack and result, retry or dead letter) itself, with no hand-off in
/// between. The ``AttemptSupervisor`` extends reservations meanwhile and takes over attempts
/// that pass their timeout or that shutdown interrupts: these are unstructured tasks rather
/// than a task group's children so that a body ignoring cancellation can be abandoned.
/// Stopping stops the reservers, lets in-flight tasks finish within the grace period, then
/// cancels them and releases their messages.
final class WorkerRuntime<Backend: QueueBackend>: Sendable {
    private struct Control {
        var reservers: [Task<Void, Never>] = []
        var isStopping = false
    }

    private let backend: Backend
    /// The backend's one-request acknowledge-and-publish, where it reaches the notifier.
    private let resultPublisher: (any ResultPublishingQueueBackend<Backend.Receipt>)?
    /// Set where retries are sent again as new messages (``ResendingQueueBackend``).
    private let resender: (any ResendingQueueBackend<Backend.Receipt>)?
    /// Set where a message can be sent to wait (``DelayedSendQueueBackend``): a message that
    /// arrives before its `eta` is sent again for the rest of its wait.
    private let delayedSender: (any DelayedSendQueueBackend)?
    /// Set where operators can pause queues (``PausableQueueBackend``): reservers check first.
    private let pausable: (any PausableQueueBackend)?
    /// Whether the broker's delivery count also counts heartbeats: attempts come from the
    /// message alone then, and redeliveries have an allowance for the heartbeats.
    private let countsHeartbeats: Bool
    private let notifier: any Notifier
    /// Where call statuses are recorded, when the notifier keeps them.
    private let statusStore: (any TaskStatusStore)?
    /// The backend's reserve that records each call's `running` in its own request, where the
    /// backend reaches ``statusStore``, and how long the store keeps statuses.
    private let startRecorder:
        (backend: any StatusRecordingQueueBackend<Backend.Receipt>, retention: Duration)?
    /// The calls a cancel can reach, when the worker allows cancelling running calls.
    private let runningCalls: RunningCalls?
    /// Sends the registry's periodic calls while this worker leads them.
    private let scheduler: PeriodicScheduler?
    private let registry: TaskRegistry
    private let codec: MessageCodec
    private let queues: [QueueName]
    private let options: WorkerOptions
    private let defaultChannel: ChannelName
    private let events: EventBroadcaster
    private let logger: any IvyLogger
    private let middleware: [any TaskMiddleware]
    /// Each queue's own execution slots, so an idle queue's long poll cannot hold another's.
    private let limiters: [QueueName: ConcurrencyLimiter]
    /// Per queue, the messages from their reserve until they are settled (a limiter's slots
    /// also count the reserve that waits for them).
    private let held: [QueueName: HeldCount]
    private let supervisor: AttemptSupervisor<Backend>
    private let control = Mutex(Control())
    private let closedBackend = Atomic<Bool>(false)

    /// How many messages each queue has in hand: decoding, running or settling them.
    var inFlight: [QueueName: Int] { held.mapValues(\.current) }

    /// Whether a reserve found the backend closed (then the reservers stopped).
    var backendWasClosed: Bool { closedBackend.load(ordering: .relaxed) }

    init(
        backend: Backend, notifier: any Notifier, registry: TaskRegistry, codec: MessageCodec,
        queues: [QueueName], options: WorkerOptions, defaultChannel: ChannelName, events: EventBroadcaster,
        middleware: [any TaskMiddleware]
    ) {
        precondition(!queues.isEmpty, "a worker needs at least one queue")
        self.backend = backend
        if let publisher = backend as? any ResultPublishingQueueBackend<Backend.Receipt>,
            publisher.canPublish(through: notifier)
        {
            resultPublisher = publisher
        } else {
            resultPublisher = nil
        }
        resender = backend as? any ResendingQueueBackend<Backend.Receipt>
        pausable = backend as? any PausableQueueBackend
        delayedSender = backend as? any DelayedSendQueueBackend
        countsHeartbeats = resender?.deliveryCountIncludesExtensions ?? false
        self.notifier = notifier
        statusStore = notifier.activeStatusStore
        if let statusStore, let retention = statusStore.statusRetention,
            let recorder = backend as? any StatusRecordingQueueBackend<Backend.Receipt>,
            recorder.canRecordStatuses(in: statusStore)
        {
            startRecorder = (recorder, retention)
        } else {
            startRecorder = nil
        }
        runningCalls = options.allowCancelRunning ? RunningCalls() : nil
        if let store = notifier as? any ScheduleStore, !registry.schedules.isEmpty {
            scheduler = PeriodicScheduler(
                tasks: registry.schedules, store: store,
                holder: "\(options.name):\(String(OpenSSL.randomUInt64(), radix: 16))",
                options: options.schedule,
                logger: options.logger
            ) { [codec] message, queue in
                _ = try await backend.send(codec.encode(message), to: queue)
                events.emit(
                    .scheduled(
                        TaskEventContext(
                            taskName: message.name, taskID: message.id ?? "", queue: queue, attempt: 1,
                            dueAt: message.createdAt)))
            }
        } else {
            scheduler = nil
        }
        self.registry = registry
        self.codec = codec
        self.queues = queues
        self.options = options
        self.defaultChannel = defaultChannel
        self.events = events
        self.middleware = middleware
        logger = options.logger
        // Concurrency is shared out evenly, at least one slot per queue.
        let share = max(1, options.concurrency / queues.count)
        limiters = Dictionary(uniqueKeysWithValues: queues.map { ($0, ConcurrencyLimiter(capacity: share)) })
        held = Dictionary(uniqueKeysWithValues: queues.map { ($0, HeldCount()) })
        supervisor = AttemptSupervisor(
            backend: backend, visibility: options.visibilityTimeout, logger: logger)
    }

    /// Serves until the calling task is cancelled or ``stop()`` is called, then drains.
    func run() async {
        // The work runs in its own task so that cancelling the caller stops reserving without
        // cancelling the tasks in flight: they get the grace period first.
        let work = Task { await self.serve() }
        await withTaskCancellationHandler {
            await work.value
        } onCancel: {
            self.stop()
        }
    }

    /// Stops reserving; ``run()`` returns once in-flight tasks are done or cancelled.
    func stop() {
        let reservers = control.withLock { control in
            control.isStopping = true
            return control.reservers
        }
        for reserver in reservers { reserver.cancel() }
    }

    private func serve() async {
        let reservers = queues.map { queue in
            Task { await self.reserveLoop(queue: queue, limiter: self.limiters[queue]!) }
        }
        let stopRequested = control.withLock { control in
            control.reservers = reservers
            return control.isStopping
        }
        if stopRequested {
            for reserver in reservers { reserver.cancel() }
        }
        let supervising = Task { await supervisor.supervise() }
        let cancels = await listenForCancels()
        let scheduling = scheduler.map { scheduler in Task { await scheduler.run() } }
        logger.info("worker started", ["queues": names, "backend": backend.endpoint])
        for reserver in reservers { await reserver.value }
        scheduling?.cancel()
        await scheduling?.value
        if await !drain(within: options.gracePeriod) {
            let inFlight = limiters.values.reduce(0) { $0 + $1.inUse }
            logger.warning("grace period over; cancelling tasks in flight", ["in_flight": "\(inFlight)"])
            // Shutdown past the grace period: hand the messages to another worker, all at once
            // so that a slow broker costs one timeout, not one per message.
            await withDiscardingTaskGroup { group in
                for reservation in supervisor.interruptAll() {
                    group.addTask {
                        await self.settle(reservation) {
                            do { try await self.backend.release(reservation, delay: .zero) } catch {
                                self.logger.warning(
                                    "release failed; the message returns when its reservation expires",
                                    ["message.id": reservation.messageID, "error": "\(error)"])
                            }
                        }
                    }
                }
            }
            // Tasks past their attempt (decoding, acknowledging) settle by themselves.
            for limiter in limiters.values { await limiter.waitUntilIdle() }
        }
        supervising.cancel()
        cancels?.cancel()
        logger.info("worker stopped", ["queues": names])
    }

    /// Subscribes to the cancel channel, where cancels of running calls are announced, when the
    /// worker allows cancelling them.
    private func listenForCancels() async -> NotifierSubscription? {
        guard let runningCalls, let channel = defaultChannel.cancelChannel else { return nil }
        do {
            return try await notifier.subscribe(to: channel) { [logger] payload in
                let id = String(decoding: payload, as: UTF8.self)
                if runningCalls.cancel(id) { logger.info("cancelling a running call", ["task.id": id]) }
            }
        } catch {
            logger.error(
                "listening for cancels failed; calls running here cannot be cancelled",
                ["channel": channel.rawValue, "error": "\(error)"])
            return nil
        }
    }

    private var names: String { queues.map(\.rawValue).joined(separator: ",") }

    /// Waits until no task is in flight; false if the grace period ran out first.
    private func drain(within grace: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { race in
            race.addTask {
                for limiter in self.limiters.values { await limiter.waitUntilIdle() }
                return true
            }
            race.addTask {
                try? await Task.sleep(for: grace)
                return false
            }
            let first = await race.next() ?? false
            race.cancelAll()
            return first
        }
    }

    private func reserveLoop(queue: QueueName, limiter: ConcurrencyLimiter) async {
        var pauses = pausable.map {
            QueuePauseWatch(backend: $0, queue: queue, interval: options.pauseCheckInterval, logger: logger)
        }
        while !Task.isCancelled {
            let slots = await limiter.acquire(upTo: limiter.capacity)
            guard slots > 0 else { break }
            // Asked after the slots are free, right before the reserve, so that the answer is
            // no older than the check interval when the reserve starts. A reserve already
            // waiting takes what comes until its poll wait ends: a pause takes effect within
            // that plus the interval.
            if await pauses?.waitUntilServing() == false {
                limiter.release(slots)
                break
            }
            do {
                var batch = try await reserve(from: queue, count: slots)
                if batch.count > slots {
                    // A backend that breaks the contract; the worker has no slot for the rest.
                    logger.error(
                        "the backend handed out more messages than asked for; releasing the rest",
                        ["queue": queue.rawValue, "asked": "\(slots)", "got": "\(batch.count)"])
                    let excess = batch[slots...]
                    batch.removeLast(batch.count - slots)
                    Task {
                        for reservation in excess { try? await backend.release(reservation, delay: .zero) }
                    }
                }
                limiter.release(slots - batch.count)
                start(batch)
            } catch {
                limiter.release(slots)
                if Task.isCancelled { break }
                if let error = error as? IvyError, error.code == .closed {
                    closedBackend.store(true, ordering: .relaxed)
                    break
                }
                logger.error("reserve failed", ["queue": queue.rawValue, "error": "\(error)"])
                try? await Task.sleep(for: options.errorBackoff)
            }
        }
    }

    /// Reserves up to `count` messages; where the backend can, it records their calls' `running`
    /// in the same request.
    private func reserve(from queue: QueueName, count: Int) async throws -> [Reservation<Backend.Receipt>] {
        if let (recorder, retention) = startRecorder {
            return try await recorder.reserve(
                from: queue, count: count, visibility: options.visibilityTimeout, wait: options.pollWait,
                recordingStartsOn: options.name, keptFor: retention)
        }
        return try await backend.reserve(
            from: queue, count: count, visibility: options.visibilityTimeout, wait: options.pollWait)
    }

    /// Starts a task for each reserved message; each holds one slot until it is settled.
    private func start(_ batch: [Reservation<Backend.Receipt>]) {
        guard let first = batch.first else { return }
        // Every one of them is settled through ``settled(_:)``.
        held[first.queue]?.add(batch.count)
        guard let ids = supervisor.admit(batch) else {
            // Reserved while shutdown interrupted the worker: give them straight back.
            for reservation in batch {
                Task {
                    await settle(reservation) { try? await self.backend.release(reservation, delay: .zero) }
                }
            }
            return
        }
        for (reservation, id) in zip(batch, ids) {
            supervisor.attach(id, task: Task { await self.execute(reservation, attempt: id) })
        }
    }

    // MARK: One message

    /// Runs one reserved message and settles it, unless the supervisor takes it over first.
    private func execute(_ delivered: Reservation<Backend.Receipt>, attempt id: UInt64) async {
        let message: TaskMessage
        let form: MessageEncryption.Format?
        do {
            try backend.checkSize(delivered.body, queue: delivered.queue)
            (message, form) = try codec.decodeCall(delivered.body)
        } catch {
            guard let reservation = await supervisor.end(id) else { return }
            await settle(reservation) {
                await self.deadLetter(reservation, reason: "\(error)")
                if let start = reservation.recordedStart {
                    // The reserve recorded it as running by the id its entry carries.
                    self.record(
                        TaskStatus(
                            id: start.callID, state: .deadLettered, queue: reservation.queue.rawValue,
                            attempt: start.attempt, worker: self.options.name, updatedAt: Date(),
                            reason: "\(error)"))
                }
                if let notice = self.codec.undecryptableNotice(
                    reservation.body, queue: reservation.queue, deliveryCount: reservation.deliveryCount,
                    error: error)
                {
                    do { try await self.notifier.publish(notice.payload, to: notice.channel) } catch {
                        self.logger.error("telling the caller failed", ["error": "\(error)"])
                    }
                }
            }
            return
        }
        let taskID = message.id ?? delivered.messageID
        if let eta = message.eta, eta.timeIntervalSinceNow > Self.etaTolerance.inSeconds {
            // Not yet: it waits again, without counting an attempt (PROTOCOL.md §4 step 1a).
            guard let reservation = await supervisor.end(id) else { return }
            await settle(reservation) { await self.putBack(reservation, until: eta, taskID: taskID) }
            return
        }
        // Where the count includes heartbeats, the message's own attempt is the exact one.
        let attempt =
            countsHeartbeats
            ? max(message.attempt, 1) : Self.attempt(message.attempt, deliveryCount: delivered.deliveryCount)
        let context = TaskEventContext(
            taskName: message.name, taskID: taskID, queue: delivered.queue, attempt: attempt,
            dueAt: message.eta.map { eta in message.createdAt.map { max($0, eta) } ?? eta }
                ?? message.createdAt)
        guard let task = registry.task(named: message.name) else {
            let error = ResultNotification.RemoteError(
                name: "UnknownTask", message: "\(message.name) is not registered on this worker",
                retryable: false)
            guard let reservation = await supervisor.end(id) else { return }
            // Like any other outcome (PROTOCOL.md §3): a node-ivy producer listens on the base.
            await fail(
                reservation, message, context, error: error, channel: message.notify ?? defaultChannel,
                form: form)
            return
        }
        let channel = task.options.resultWanted ? (message.notify ?? defaultChannel) : nil
        if let deadline = message.deadline, deadline < Date() {
            // The caller has stopped waiting: running it now would only waste the worker.
            let reason = "\(IvyError(.deadlineExpired, taskName: message.name, taskID: taskID))"
            guard let reservation = await supervisor.end(id) else { return }
            await settle(reservation) {
                await self.deadLetter(reservation, reason: reason)
                self.record(self.status(.deadLettered, context, reason: reason))
            }
            return
        }
        let (sum, overflow) = task.options.retry.maxAttempts.addingReportingOverflow(options.extraDeliveries)
        let deliveryLimit = overflow ? Int.max : sum
        let allowance =
            !countsHeartbeats
            ? Int.max
            : Self.deliveryAllowance(
                extraDeliveries: options.extraDeliveries, timeout: task.options.timeout,
                visibility: options.visibilityTimeout)
        if context.attempt > deliveryLimit || delivered.deliveryCount > allowance {
            // Delivered again and again without finishing (its workers crashed, or its
            // reservation kept expiring): stop here rather than forever.
            let why =
                context.attempt > deliveryLimit
                ? "attempt \(context.attempt) is past the \(deliveryLimit) deliveries \(message.name) allows"
                : "delivered \(delivered.deliveryCount) times, heartbeats included, past the \(allowance) "
                    + "\(message.name) allows"
            let error = ResultNotification.RemoteError(
                name: "AttemptsExhausted", message: why, retryable: false)
            guard let reservation = await supervisor.end(id) else { return }
            await fail(reservation, message, context, error: error, channel: channel, form: form)
            return
        }
        // Listening for its cancels before `running` is recorded, so none asked after is missed
        // (those asked after the reserve recorded it and before this were kept for it).
        let ticket = runningCalls?.expect(taskID)
        // Recorded before it starts, in one step with the check that it was not cancelled.
        var cancelledFirst = ticket?.wasCancelled == true
        if !cancelledFirst { cancelledFirst = await recordStart(delivered, context) == .cancelled }
        if cancelledFirst {
            if let ticket { runningCalls?.forget(ticket) }
            guard let reservation = await supervisor.end(id) else { return }
            await cancel(
                reservation, message, context, "cancelled before it started", channel: channel, form: form)
            return
        }
        // Before the clock starts, so that a timeout's events cannot come before it.
        events.emit(.started(context))
        let started = supervisor.startClock(id, timeout: task.options.timeout) { reservation in
            let error = ResultNotification.RemoteError(
                name: "TaskTimedOut", message: "ran longer than \(task.options.timeout)", retryable: true)
            Task {
                await self.failed(
                    reservation, message, context, task: task, error: error, channel: channel, form: form)
            }
        }
        guard started else {
            if let ticket { runningCalls?.forget(ticket) }
            return
        }
        let clock = ContinuousClock()
        let start = clock.now
        let result: Result<[UInt8], any Error>
        var cancelled = false
        let run = TaskContext(
            taskID: taskID, taskName: message.name, attempt: context.attempt, queue: delivered.queue,
            messageID: delivered.messageID, deadline: message.deadline, trace: message.trace,
            logger: logger)
        if let runningCalls, let ticket {
            (result, cancelled) = await runningCalls.run(ticket) {
                try await self.runAttempt(task, message.args[...], in: run)
            }
        } else {
            do {
                result = .success(try await runAttempt(task, message.args[...], in: run))
            } catch {
                result = .failure(error)
            }
        }
        guard let reservation = await supervisor.end(id) else { return }
        if cancelled, case .failure = result {
            await cancel(
                reservation, message, context, "cancelled while it ran", channel: channel, form: form)
            return
        }
        switch result {
        case .success(let value):
            events.emit(.succeeded(context, duration: clock.now - start))
            // Settled before the caller hears of it: once resumed, the message is gone and the
            // worker's events for it are out. Acknowledged and published in one step where the
            // broker can (one round trip less for the caller).
            guard let channel else {
                await settle(reservation) {
                    do { try await self.backend.ack(reservation) } catch { self.ackFailed(taskID, error) }
                    self.record(self.status(.succeeded, context))
                }
                return
            }
            let notification = notification(message, context, outcome: .success(result: value))
            let payload = codec.encode(notification, answering: form)
            let succeeded = statusStore.map { _ in status(.succeeded, context, notification: payload) }
            guard let resultPublisher else {
                await settle(reservation) {
                    do { try await self.backend.ack(reservation) } catch { self.ackFailed(taskID, error) }
                    await self.publish(payload, to: channel, recording: succeeded, taskID: taskID)
                }
                return
            }
            // This task ends here: the backend reports the outcome, and the slot is freed then.
            resultPublisher.ack(
                reservation, publishing: payload, to: channel, through: notifier, recording: succeeded
            ) { outcome in
                if let error = outcome.ackError { self.ackFailed(taskID, error) }
                if let error = outcome.publishError {
                    self.logger.error("publishing a result failed", ["task.id": taskID, "error": "\(error)"])
                }
                self.settled(reservation)
            }
        case .failure(let error):
            await failed(
                reservation, message, context, task: task, error: Self.remoteError(error), channel: channel,
                form: form)
        }
    }

    /// Runs the task body inside the middleware, with its context (and its trace context) set.
    private func runAttempt(_ task: RegisteredTask, _ arguments: ArraySlice<UInt8>, in context: TaskContext)
        async throws -> [UInt8]
    {
        try await TaskContext.$current.withValue(context) {
            // The attempt's task inherits the task locals of whoever started the worker: a trace
            // bound there must not reach messages that carry none. Bound only when it differs,
            // since binding costs an allocation per attempt.
            guard context.trace != TraceContext.current else {
                return try await runInMiddleware(task, arguments, context)
            }
            return try await TraceContext.$current.withValue(context.trace) {
                try await runInMiddleware(task, arguments, context)
            }
        }
    }

    private func runInMiddleware(
        _ task: RegisteredTask, _ arguments: ArraySlice<UInt8>, _ context: TaskContext
    )
        async throws -> [UInt8]
    {
        guard !middleware.isEmpty else { return try await task.run(arguments) }
        var outcome: Result<[UInt8], any Error>?
        try await middleware.intercept(context) {
            guard outcome == nil else {
                throw TaskFailure("MiddlewareError", "a middleware called next() twice", retryable: false)
            }
            do { outcome = .success(try await task.run(arguments)) } catch {
                outcome = .failure(error)
                throw error
            }
        }
        switch outcome {
        case .success(let result): return result
        // A middleware that swallowed the task's failure has no result to give: the failure stands.
        case .failure(let error): throw error
        case nil:
            throw TaskFailure(
                "SkippedByMiddleware", "a middleware returned without running the task", retryable: false)
        }
    }

    /// Retries a failed attempt if its error and the task's policy allow, or fails it for good.
    private func failed(
        _ reservation: Reservation<Backend.Receipt>, _ message: TaskMessage, _ context: TaskEventContext,
        task: RegisteredTask, error remote: ResultNotification.RemoteError, channel: ChannelName?,
        form: MessageEncryption.Format?
    ) async {
        guard remote.retryable, let delay = task.options.retry.delay(afterAttempt: context.attempt) else {
            await fail(reservation, message, context, error: remote, channel: channel, form: form)
            return
        }
        if let statusStore {
            let retrying = status(
                .retrying, context, reason: "\(remote.name): \(remote.message)",
                runAt: Date().addingTimeInterval(delay.inSeconds))
            // A call whose cancel was asked while it ran is not retried.
            if await recorded(retrying, in: statusStore) == .cancelled {
                await cancel(
                    reservation, message, context, "a cancel was asked while it ran; not retried",
                    channel: channel,
                    form: form)
                return
            }
        }
        await settle(reservation) {
            do {
                if let resender = self.resender {
                    // The next attempt is a new message that says which it is; one without an id
                    // (node ivy's) keeps the broker's first id, which its caller waits for.
                    var next = message
                    next.id = context.taskID
                    next.attempt = context.attempt == Int.max ? Int.max : context.attempt + 1
                    try await resender.resend(
                        reservation, as: self.codec.encode(next, as: form), delay: delay)
                } else {
                    try await self.backend.release(reservation, delay: delay)
                }
                self.events.emit(.retried(context, delay: delay, error: "\(remote.name): \(remote.message)"))
            } catch {
                self.logger.error(
                    "the retry could not be queued; the message will come back",
                    ["task.id": context.taskID, "error": "\(error)"])
            }
        }
    }

    /// Sends an early message's body again to wait for the rest of its time (at most the
    /// backend's longest delay), then acknowledges the delivery: the copy starts at delivery 1,
    /// so the wait counts no attempt. A crash between the two leaves two copies, which both wait
    /// for the `eta` and then run (at least once). A backend that cannot send with a delay
    /// releases the message with the delay instead, which counts a delivery.
    private func putBack(_ reservation: Reservation<Backend.Receipt>, until eta: Date, taskID: String) async {
        let seconds = max(eta.timeIntervalSinceNow, 0)
        let remaining = Duration.milliseconds(Int64((min(seconds, 1e9) * 1000).rounded(.up)))
        logger.debug(
            "received before its eta; waits again",
            ["task.id": taskID, "queue": reservation.queue.rawValue, "wait": "\(remaining)"])
        guard let delayedSender else {
            do { try await backend.release(reservation, delay: remaining) } catch {
                logger.error(
                    "putting back an early message failed; it comes back when its reservation expires",
                    ["task.id": taskID, "error": "\(error)"])
            }
            return
        }
        do {
            _ = try await delayedSender.send(
                reservation.body, to: reservation.queue, after: min(remaining, delayedSender.longestSendDelay)
            )
        } catch {
            logger.error(
                "putting back an early message failed; it comes back when its reservation expires",
                ["task.id": taskID, "error": "\(error)"])
            return
        }
        do { try await backend.ack(reservation) } catch {
            logger.warning(
                "an early message was put back but its delivery not acknowledged; both copies wait and run",
                ["task.id": taskID, "error": "\(error)"])
        }
    }

    /// How early a message may arrive and still run: the `eta` is written in whole milliseconds
    /// and brokers keep their own clocks, and putting a message back for a moment costs more than
    /// running it that moment early.
    static var etaTolerance: Duration { .milliseconds(5) }

    /// Fails a call as cancelled (`Cancelled: <why>`), never retried.
    private func cancel(
        _ reservation: Reservation<Backend.Receipt>, _ message: TaskMessage, _ context: TaskEventContext,
        _ why: String, channel: ChannelName?, form: MessageEncryption.Format?
    ) async {
        let error = ResultNotification.RemoteError(name: "Cancelled", message: why, retryable: false)
        await fail(reservation, message, context, error: error, channel: channel, form: form, as: .cancelled)
    }

    /// Fails a call for good: dead-letters its message, records its final status (`state`:
    /// failed or cancelled) and tells its caller.
    private func fail(
        _ reservation: Reservation<Backend.Receipt>, _ message: TaskMessage, _ context: TaskEventContext,
        error: ResultNotification.RemoteError, channel: ChannelName?, form: MessageEncryption.Format?,
        as state: TaskStatus.State = .failed
    ) async {
        await settle(reservation) {
            await self.deadLetter(
                reservation, reason: "\(error.name): \(error.message) (attempt \(context.attempt))",
                emit: false)
            self.events.emit(.failed(context, error: "\(error.name): \(error.message)"))
            let final = self.statusStore.map { _ in
                self.status(state, context, reason: "\(error.name): \(error.message)")
            }
            if let channel {
                let payload = self.codec.encode(
                    self.notification(message, context, outcome: .failure(error)), answering: form)
                await self.publish(payload, to: channel, recording: final, taskID: context.taskID)
            } else if let final {
                self.record(final)
            }
        }
    }

    private func deadLetter(_ reservation: Reservation<Backend.Receipt>, reason: String, emit: Bool = true)
        async
    {
        do {
            try await backend.deadLetter(reservation, reason: reason)
            logger.warning(
                "dead-lettered",
                ["queue": reservation.queue.rawValue, "message.id": reservation.messageID, "reason": reason])
            if emit {
                events.emit(
                    .deadLettered(queue: reservation.queue, messageID: reservation.messageID, reason: reason))
            }
        } catch {
            logger.error(
                "dead-letter failed; the message will come back",
                ["message.id": reservation.messageID, "error": "\(error)"])
        }
    }

    private func notification(
        _ message: TaskMessage, _ context: TaskEventContext, outcome: ResultNotification.Outcome
    ) -> ResultNotification {
        ResultNotification(
            id: context.taskID, name: message.name, args: message.args, options: message.options,
            queue: context.queue?.rawValue ?? "", attempt: context.attempt, outcome: outcome)
    }

    /// Publishes a call's outcome, recording its final status first where statuses are kept.
    private func publish(
        _ payload: [UInt8], to channel: ChannelName, recording status: TaskStatus?, taskID: String
    )
        async
    {
        do {
            if let status, let statusStore {
                try await statusStore.publish(payload, to: channel, recording: status)
            } else {
                try await notifier.publish(payload, to: channel)
            }
        } catch {
            logger.error("publishing a result failed", ["task.id": taskID, "error": "\(error)"])
        }
    }

    // MARK: Statuses

    /// A status of this worker's attempt at a call.
    private func status(
        _ state: TaskStatus.State, _ context: TaskEventContext, reason: String? = nil, runAt: Date? = nil,
        notification: [UInt8]? = nil
    ) -> TaskStatus {
        TaskStatus(
            id: context.taskID, state: state, taskName: context.taskName, queue: context.queue?.rawValue,
            attempt: context.attempt, worker: options.name, updatedAt: Date(), runAt: runAt, reason: reason,
            notification: notification)
    }

    /// Records the call's `running` status, unless the reserve did for this attempt, and returns
    /// the state the store holds afterwards; nil when no statuses are kept or the store could
    /// not be reached.
    private func recordStart(_ delivered: Reservation<Backend.Receipt>, _ context: TaskEventContext) async
        -> TaskStatus.State?
    {
        if let start = delivered.recordedStart, start.callID == context.taskID,
            start.attempt == context.attempt
        {
            return start.state
        }
        guard let statusStore else { return nil }
        return await recorded(status(.running, context), in: statusStore)
    }

    /// Records `status` and returns the state the store holds afterwards; nil when the store
    /// could not be reached, and the call goes on: statuses are advisory.
    private func recorded(_ status: TaskStatus, in store: any TaskStatusStore) async -> TaskStatus.State? {
        do { return try await store.record(status) } catch {
            logger.warning("recording a call's status failed", ["task.id": status.id, "error": "\(error)"])
            return nil
        }
    }

    /// Records `status` without waiting, where statuses are kept.
    private func record(_ status: TaskStatus) {
        statusStore?.record(status) { [logger] outcome in
            if case .failure(let error) = outcome {
                logger.warning(
                    "recording a call's status failed", ["task.id": status.id, "error": "\(error)"])
            }
        }
    }

    private func ackFailed(_ taskID: String, _ error: any Error) {
        if (error as? IvyError)?.code == .reservationLost {
            // Another worker may have taken the message after the lease expired, and run it or
            // be running it: nothing is known to run again.
            logger.warning(
                "the reservation expired before the ack; another worker may run the message too",
                ["task.id": taskID, "error": "\(error)"])
        } else {
            logger.warning(
                "ack failed; the message runs again once its reservation expires",
                ["task.id": taskID, "error": "\(error)"])
        }
    }

    /// Settles a message whose attempt this task ended or took over, then frees its slot.
    ///
    /// The supervisor cancels only the attempts it takes over, never a task that ended its
    /// attempt, so the bookkeeping normally runs right here, with no hand-off. Should the current
    /// task be cancelled anyway, it runs in a fresh task that cancellation cannot cut short.
    private func settle(
        _ reservation: Reservation<Backend.Receipt>, _ body: @escaping @Sendable () async -> Void
    ) async {
        if Task.isCancelled {
            await Task { await body() }.value
        } else {
            await body()
        }
        settled(reservation)
    }

    /// Frees the slot of a message that has been settled.
    private func settled(_ reservation: Reservation<Backend.Receipt>) {
        held[reservation.queue]?.subtract(1)
        limiters[reservation.queue]?.release(1)
    }

    /// The attempt a delivery is: the message's own attempt plus the redeliveries the broker
    /// counted. Both come from outside (a message, a broker), so the sum saturates rather than
    /// traps; a saturated attempt is past every delivery limit and goes to the dead letter.
    static func attempt(_ messageAttempt: Int, deliveryCount: Int) -> Int {
        let (sum, overflow) = max(messageAttempt, 1).addingReportingOverflow(max(deliveryCount, 1) - 1)
        return overflow ? Int.max : sum
    }

    /// How often a message may be delivered on a backend whose count includes heartbeats: each
    /// of the `extraDeliveries + 1` deliveries a message may have besides its retries (which
    /// are new messages there) may also have made a heartbeat every third of `visibility`
    /// until its task's `timeout`, and one more while it was settled. Saturates.
    static func deliveryAllowance(extraDeliveries: Int, timeout: Duration, visibility: Duration) -> Int {
        let beats = (timeout / (visibility / 3)).rounded(.up) + 2
        let allowance = Double(extraDeliveries + 1) * beats
        return allowance < Double(Int.max / 2) ? Int(allowance) : Int.max
    }

    /// How a thrown error is reported to the caller.
    static func remoteError(_ error: any Error) -> ResultNotification.RemoteError {
        switch error {
        case let failure as TaskFailure:
            return .init(name: failure.name, message: failure.message, retryable: failure.retryable)
        case let error as IvyError where error.code == .argumentsUndecodable:
            return .init(name: "ArgumentsUndecodable", message: error.detail ?? "\(error)", retryable: false)
        case let error as IvyError:
            return .init(name: "IvyError", message: "\(error)", retryable: true)
        default:
            return .init(name: "\(type(of: error))", message: "\(error)", retryable: true)
        }
    }
}

/// A count shared by tasks, in a dictionary (an `Atomic` itself cannot be stored in one).
private final class HeldCount: Sendable {
    private let value = Atomic<Int>(0)

    func add(_ count: Int) { value.add(count, ordering: .relaxed) }
    func subtract(_ count: Int) { value.subtract(count, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}
