// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
internal import Synchronization

/// Calls registered tasks through a queue and waits for their results: the producer.
///
/// ```swift
/// let registry = TaskRegistry()
/// let tasks = try TestPackage.register(in: registry)
/// let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: MemoryNotifier())
/// let client = try await IvyClient(registry: registry, connection: connection)
/// let value = try await client.call(tasks.factorial, 5)    // 120, once a worker ran it
/// await client.close()
/// ```
///
/// Each client subscribes once, to its own channel `<base>:<client id>`, and routes every
/// result that arrives there to its caller by task id. It runs nothing: an ``IvyWorker`` does.
public final class IvyClient: Sendable {
    public let registry: TaskRegistry
    public let options: ClientOptions
    /// A random id naming this client in its channel and its task ids.
    public let producerID: String
    /// The channel this client's results come back on.
    public let notificationChannel: ChannelName

    private let connection: IvyConnection
    private let ownsConnection: Bool
    /// The backend's non-suspending send, where it has one.
    private let pipelined: (any PipelinedQueueBackend)?
    /// The backend's send with a delay, where it has one: calls that run later need it.
    private let delayed: (any DelayedSendQueueBackend)?
    private let codec: MessageCodec
    /// Where call statuses are recorded, when the notifier keeps them.
    private let statusStore: (any TaskStatusStore)?
    /// The backend's send that records a call's `waiting` in its own request, where the
    /// backend reaches ``statusStore``, and how long the store keeps statuses.
    private let recordingSender: (backend: any StatusRecordingQueueBackend, retention: Duration)?
    /// The base channel: workers that allow cancelling running calls listen on its cancel channel.
    private let baseChannel: ChannelName
    /// Status records on their way, which ``close()`` waits for.
    private let pendingWrites = PendingWrites()
    private let router = ResultRouter()
    /// What this client's calls did, counted per task and queue (see ``prometheusText()``).
    public let metrics = ProducerMetrics()
    private let broadcaster: EventBroadcaster
    private let subscription: NotifierSubscription
    private let sweeper: Task<Void, Never>
    private let isClosed = Atomic<Bool>(false)
    private let randomWords = RandomWords()

    /// Makes a client over a connection it shares with others, and subscribes to its channel.
    ///
    /// ``close()`` leaves the connection open: whoever made it closes it.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` for options out of range, or the
    ///   notifier's error when the subscription fails.
    public convenience init(
        registry: TaskRegistry, connection: IvyConnection, options: ClientOptions = .init()
    ) async throws {
        try await self.init(registry: registry, connection: connection, owning: false, options: options)
    }

    /// Makes a client; with `owning`, ``close()`` closes the connection too, and so does a
    /// failure here.
    package init(
        registry: TaskRegistry, connection: IvyConnection, owning: Bool, options: ClientOptions
    ) async throws {
        let base: ChannelName
        do {
            try options.validate()
            base = try options.notificationChannel ?? ChannelName.base()
        } catch {
            if owning { await connection.close() }
            throw error
        }
        self.registry = registry
        self.options = options
        self.connection = connection
        broadcaster = EventBroadcaster(observer: { [metrics] in metrics.record($0) })
        ownsConnection = owning
        pipelined = connection.backend as? any PipelinedQueueBackend
        delayed = connection.backend as? any DelayedSendQueueBackend
        codec = MessageCodec(encryption: options.encryption)
        statusStore = connection.notifier.activeStatusStore
        if let statusStore, let retention = statusStore.statusRetention,
            let backend = connection.backend as? any StatusRecordingQueueBackend,
            backend.canRecordStatuses(in: statusStore)
        {
            recordingSender = (backend, retention)
        } else {
            recordingSender = nil
        }
        baseChannel = base
        producerID = Self.randomID()
        // 16 hex digits more than a valid base: at most 1,041 bytes, so only an overlong base fails.
        guard let channel = base.appending(producerID) else {
            if owning { await connection.close() }
            throw IvyError.invalidConfiguration(
                "ClientOptions.notificationChannel", mustBe: "at most 1007 bytes",
                got: base.rawValue.utf8.count)
        }
        notificationChannel = channel
        // Results are routed on the notifier's own thread: the caller's task is the only one
        // to wake.
        do {
            subscription = try await connection.notifier.subscribe(to: notificationChannel) {
                [router, codec, logger = options.logger] payload in
                do {
                    let notification = try codec.decodeNotification(payload)
                    if !router.deliver(notification) {
                        logger.debug("result for no waiting call", ["task.id": notification.id])
                    }
                } catch {
                    // A waiting call ends now with the reason, not at its timeout.
                    if let id = codec.callID(ofUnreadable: payload), router.finish(id, with: .failure(error))
                    {
                        logger.warning(
                            "a result could not be read; its call ends", ["task.id": id, "error": "\(error)"])
                    } else {
                        logger.warning("undecodable notification", ["error": "\(error)"])
                    }
                }
            }
        } catch {
            if owning { await connection.close() }
            throw error
        }
        sweeper = Task { [router] in await router.sweep() }
    }

    deinit {
        subscription.cancel()
        sweeper.cancel()
        // A client made from URLs and dropped without close(): its connection's threads go too.
        if ownsConnection, !isClosed.load(ordering: .relaxed) {
            Task { [connection] in await connection.close() }
        }
    }

    // MARK: Producer

    /// Sends a call without waiting for its outcome; returns its task id.
    ///
    /// No caller is waiting: if the task wants results, the worker publishes it on the base
    /// channel, as node ivy does for messages without a notification channel.
    ///
    /// - Parameters:
    ///   - task: The registered task to call.
    ///   - arguments: Its arguments, as its parameter types.
    ///   - after: Run the call no sooner than this long from now (PROTOCOL.md's `eta`; the backend must be a
    ///     ``DelayedSendQueueBackend``).
    ///   - at: Run the call no sooner than this time; give `after` or `at`, not both.
    /// - Throws: ``IvyError/Code/invalidConfiguration`` for a negative `after` or both given,
    ///   ``IvyError/Code/unsupportedBackend`` with either on a backend that cannot hold a message
    ///   back (not a ``DelayedSendQueueBackend``).
    @discardableResult
    public func enqueue<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        after: Duration? = nil, at: Date? = nil
    ) async throws -> String {
        try await enqueue(
            task.name, task.options, args: try ArgumentEncoder.encode(repeat each arguments),
            start: try StartTime(after: after, at: at))
    }

    /// Sends a call and returns once the queue accepted it; await the result on what it returns.
    ///
    /// - Parameters:
    ///   - task: The registered task to call.
    ///   - arguments: Its arguments, as its parameter types.
    ///   - timeout: How long the result is awaited, from when the call may run: now, or its
    ///     start time (``ClientOptions/resultTimeout`` by default). Workers drop the message once
    ///     it has passed.
    ///   - after: Run the call no sooner than this long from now (PROTOCOL.md's `eta`; the backend must be a
    ///     ``DelayedSendQueueBackend``).
    ///   - at: Run the call no sooner than this time; give `after` or `at`, not both.
    /// - Throws: As ``enqueue(_:_:after:at:)``.
    public func delayedCall<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        timeout: Duration? = nil, after: Duration? = nil, at: Date? = nil
    ) async throws -> PendingResult<Result> {
        try await delayedCall(
            task.name, task.options, args: try ArgumentEncoder.encode(repeat each arguments),
            timeout: timeout,
            start: try StartTime(after: after, at: at))
    }

    /// Calls a task and waits for its result.
    ///
    /// With `after` or `at`, the call runs no sooner than then, and `timeout` counts from then.
    ///
    /// - Throws: ``RemoteTaskError`` when it failed on the worker, ``IvyError`` when it could not be
    ///   sent or no result came within `timeout`; as ``enqueue(_:_:after:at:)`` for `after`/`at`.
    public func call<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        timeout: Duration? = nil, after: Duration? = nil, at: Date? = nil
    ) async throws -> Result {
        try await call(
            task.name, task.options, args: try ArgumentEncoder.encode(repeat each arguments),
            timeout: timeout,
            start: try StartTime(after: after, at: at))
    }

    // MARK: Untyped calls

    /// Sends a call of a task known by name only, without waiting for its outcome; returns its
    /// task id.
    @discardableResult
    public func enqueue(_ task: UntypedTask, arguments: [RawJSON], after: Duration? = nil, at: Date? = nil)
        async throws -> String
    {
        try await enqueue(
            task.name, task.options, args: ArgumentEncoder.encode(json: arguments),
            start: try StartTime(after: after, at: at))
    }

    /// Sends a call of a task known by name only and returns once the queue accepted it.
    public func delayedCall(
        _ task: UntypedTask, arguments: [RawJSON], timeout: Duration? = nil, after: Duration? = nil,
        at: Date? = nil
    ) async throws -> PendingResult<RawJSON> {
        try await delayedCall(
            task.name, task.options, args: ArgumentEncoder.encode(json: arguments), timeout: timeout,
            start: try StartTime(after: after, at: at))
    }

    /// Calls a task known by name only with JSON arguments and waits for its JSON result.
    ///
    /// - Throws: As ``call(_:_:timeout:after:at:)``.
    public func call(
        _ task: UntypedTask, arguments: [RawJSON], timeout: Duration? = nil, after: Duration? = nil,
        at: Date? = nil
    ) async throws -> RawJSON {
        try await call(
            task.name, task.options, args: ArgumentEncoder.encode(json: arguments), timeout: timeout,
            start: try StartTime(after: after, at: at))
    }

    // MARK: Sending

    private func enqueue(_ name: String, _ taskOptions: TaskOptions, args: [UInt8], start: StartTime?)
        async throws -> String
    {
        try checkCanSendLater(start, taskName: name)
        let id = nextTaskID()
        let now = Date()
        let message = TaskMessage(
            name: name, args: args, options: TaskMessage.options(carrying: TraceContext.current), id: id,
            createdAt: now, eta: start.map { now.addingTimeInterval($0.delay.inSeconds) })
        try await send(message, queue: taskOptions.queue, after: start?.delay)
        return id
    }

    private func delayedCall<Result: Codable & Sendable>(
        _ name: String, _ taskOptions: TaskOptions, args: [UInt8], timeout: Duration?, start: StartTime?
    ) async throws -> PendingResult<Result> {
        try checkCanSendLater(start, taskName: name)
        let (message, pending): (TaskMessage, PendingResult<Result>) = try prepareCall(
            name, taskOptions, args: args, timeout: timeout, start: start)
        do {
            try await send(message, queue: taskOptions.queue, after: start?.delay)
        } catch {
            router.finish(pending.taskID, with: .failure(error))
            throw error
        }
        return pending
    }

    private func call<Result: Codable & Sendable>(
        _ name: String, _ taskOptions: TaskOptions, args: [UInt8], timeout: Duration?, start: StartTime?
    )
        async throws -> Result
    {
        if start != nil {
            return try await delayedCall(name, taskOptions, args: args, timeout: timeout, start: start).value
        }
        let (message, pending): (TaskMessage, PendingResult<Result>) = try prepareCall(
            name, taskOptions, args: args, timeout: timeout, start: nil)
        // The caller waits for the result alone: a send that fails ends the call through the
        // result slot, one that succeeds does not wake the caller.
        do {
            let sent = try sendWithoutSuspending(message, queue: taskOptions.queue) { [router] outcome in
                if case .failure(let error) = outcome { router.finish(pending.taskID, with: .failure(error)) }
            }
            if !sent { try await send(message, queue: taskOptions.queue, after: nil) }
        } catch {
            router.finish(pending.taskID, with: .failure(error))
            throw error
        }
        return try await pending.value
    }

    /// The message for a call, and its slot in the router, registered before the message is
    /// sent so that a fast result cannot arrive unseen. A call that runs later is awaited, and
    /// has its deadline, `timeout` after its start time.
    private func prepareCall<Result: Codable & Sendable>(
        _ name: String, _ taskOptions: TaskOptions, args: [UInt8], timeout: Duration?, start: StartTime?
    )
        throws -> (TaskMessage, PendingResult<Result>)
    {
        guard taskOptions.resultWanted else {
            throw IvyError(
                .resultNotWanted, taskName: name, detail: "registered with resultWanted: false; use enqueue")
        }
        let timeout = timeout ?? options.resultTimeout
        let id = nextTaskID()
        let now = Date()
        let delay = start?.delay ?? .zero
        let eta = start.map { now.addingTimeInterval($0.delay.inSeconds) }
        let message = TaskMessage(
            name: name, args: args, options: TaskMessage.options(carrying: TraceContext.current), id: id,
            notify: notificationChannel, createdAt: now,
            deadline: (eta ?? now).addingTimeInterval(timeout.inSeconds), eta: eta)
        let slot = router.expect(id, taskName: name, timeout: delay + timeout)
        return (
            message,
            PendingResult(
                taskID: id, taskName: name, queue: taskOptions.queue, slot: slot, events: broadcaster,
                dueAt: eta ?? now)
        )
    }

    /// Sends `message`, held back for `delay` when there is one (a ``DelayedSendQueueBackend``,
    /// checked by ``checkCanSendLater(_:taskName:)`` before the message was made).
    private func send(_ message: TaskMessage, queue: QueueName, after delay: Duration?) async throws {
        guard !isClosed.load(ordering: .relaxed) else { throw IvyError(.closed, taskName: message.name) }
        if let delay, let delayed {
            _ = try await delayed.send(codec.encode(message), to: queue, after: delay)
        } else if recordingSender != nil {
            let _: String = try await withCheckedThrowingContinuation { continuation in
                do {
                    let started = try sendWithoutSuspending(message, queue: queue) {
                        continuation.resume(with: $0)
                    }
                    // Cannot happen (the recording send is a pipelined one, and calls have ids).
                    if !started {
                        continuation.resume(throwing: IvyError(.unsupportedBackend, taskName: message.name))
                    }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            return
        } else {
            _ = try await connection.backend.send(codec.encode(message), to: queue)
        }
        Self.sent(
            message, queue: queue, broadcaster: broadcaster, statusStore: statusStore,
            pendingWrites: pendingWrites,
            logger: options.logger)
    }

    /// Refuses a call that runs later on a backend that would send it at once.
    private func checkCanSendLater(_ start: StartTime?, taskName: String) throws(IvyError) {
        guard start != nil, delayed == nil else { return }
        throw IvyError(
            .unsupportedBackend, endpoint: connection.backend.endpoint, taskName: taskName,
            detail:
                "this backend cannot hold a message back (no DelayedSendQueueBackend); after: and at: need one"
        )
    }

    /// Sends without suspending where the backend can (`completion` gets the outcome after the
    /// `.scheduled` event); true if it did, false if the caller must send with ``send(_:queue:)``.
    private func sendWithoutSuspending(
        _ message: TaskMessage, queue: QueueName,
        completion: @escaping @Sendable (Result<String, any Error>) -> Void
    ) throws -> Bool {
        guard !isClosed.load(ordering: .relaxed) else { throw IvyError(.closed, taskName: message.name) }
        // Where the status goes in the send's own request, ``sent`` has nothing left to record.
        let recording = recordingSender.flatMap { sender in
            Self.waitingStatus(message, queue: queue).map { (sender, $0) }
        }
        let finished: @Sendable (Result<String, any Error>) -> Void = {
            [
                broadcaster, pendingWrites, logger = options.logger,
                statusStore = recording == nil ? statusStore : nil
            ]
            outcome in
            if case .success = outcome {
                Self.sent(
                    message, queue: queue, broadcaster: broadcaster, statusStore: statusStore,
                    pendingWrites: pendingWrites, logger: logger)
            }
            completion(outcome)
        }
        if let ((backend, retention), status) = recording {
            backend.send(
                codec.encode(message), to: queue, recording: status, keptFor: retention, completion: finished)
        } else if let pipelined {
            pipelined.send(codec.encode(message), to: queue, completion: finished)
        } else {
            return false
        }
        return true
    }

    /// After a message was sent: tells the client's event watchers, and records the call as
    /// waiting (or scheduled) without waiting for the store. A later status request through the
    /// same store comes after it, and a worker's `running` that overtakes it stands.
    private static func sent(
        _ message: TaskMessage, queue: QueueName, broadcaster: EventBroadcaster,
        statusStore: (any TaskStatusStore)?, pendingWrites: PendingWrites, logger: any IvyLogger
    ) {
        broadcaster.emit(
            .scheduled(
                TaskEventContext(
                    taskName: message.name, taskID: message.id ?? "", queue: queue, attempt: message.attempt))
        )
        guard let statusStore, let status = waitingStatus(message, queue: queue) else { return }
        let id = status.id
        pendingWrites.begin()
        statusStore.record(status) { outcome in
            if case .failure(let error) = outcome {
                logger.warning("recording a call's status failed", ["task.id": id, "error": "\(error)"])
            }
            pendingWrites.end()
        }
    }

    /// The status of a call just sent: waiting, or scheduled; nil for a message without an id.
    private static func waitingStatus(_ message: TaskMessage, queue: QueueName) -> TaskStatus? {
        guard let id = message.id else { return nil }
        return TaskStatus(
            id: id, state: message.eta == nil ? .waiting : .scheduled, taskName: message.name,
            queue: queue.rawValue, attempt: max(message.attempt, 1), updatedAt: message.createdAt,
            runAt: message.eta, channel: message.notify?.rawValue)
    }

    // MARK: Status and cancel

    /// What became of call `id` (the id ``enqueue(_:_:after:at:)`` returns, or
    /// ``PendingResult/taskID``), from the notifier's status store; a call the store does not
    /// know (never sent, or forgotten after the retention) is ``TaskStatus/State-swift.enum/unknown``.
    /// The result of a call that succeeded is in ``TaskStatus/result`` when this client can
    /// read it (a sealed result needs the key).
    ///
    /// - Throws: ``IvyError/Code/unsupportedBackend`` when the notifier keeps no statuses, or the
    ///   store's error.
    public func status(of id: String) async throws -> TaskStatus {
        let store = try requireStatusStore()
        var status = try await store.status(of: id)
        if let payload = status.notification, let notification = try? codec.decodeNotification(payload),
            case .success(let json) = notification.outcome
        {
            status.result = try? ResultCoding.decode(RawJSON.self, from: json)
        }
        return status
    }

    /// Cancels call `id`.
    ///
    /// A call that has not started (scheduled, waiting, or waiting for a retry) is recorded as
    /// cancelled: its caller gets a `Cancelled` ``RemoteTaskError`` now (if it can read what
    /// this client seals), and the worker that receives its message dead-letters it as
    /// cancelled instead of running it. A running call is marked: a worker started with
    /// ``WorkerOptions/allowCancelRunning`` cancels it (Swift task cancellation), and no worker
    /// retries it. Returns the status afterwards, which says which happened; a final status
    /// (too late) and an unknown call are returned unchanged.
    ///
    /// - Throws: ``IvyError/Code/unsupportedBackend`` when the notifier keeps no statuses, or the
    ///   store's error.
    @discardableResult
    public func cancel(_ id: String) async throws -> TaskStatus {
        let store = try requireStatusStore()
        let status = try await store.cancel(id, reason: "Cancelled: cancelled before it started")
        switch status.state {
        case .cancelled:
            let notification = ResultNotification(
                id: id, name: status.taskName ?? "", args: Array("[]".utf8), queue: status.queue ?? "",
                attempt: status.attempt,
                outcome: .failure(
                    .init(name: "Cancelled", message: "cancelled before it started", retryable: false)))
            _ = router.deliver(notification)
            if let channel = status.channel.flatMap({ try? ChannelName($0) }) {
                let form: MessageEncryption.Format? =
                    options.encryption?.format == .authenticated ? .authenticated : nil
                try await connection.notifier.publish(
                    codec.encode(notification, answering: form), to: channel)
            }
        case .running:
            if let channel = baseChannel.cancelChannel {
                try await connection.notifier.publish(Array(id.utf8), to: channel)
            }
        default:
            break
        }
        return status
    }

    private func requireStatusStore() throws(IvyError) -> any TaskStatusStore {
        guard let statusStore else {
            throw IvyError(
                .unsupportedBackend, endpoint: connection.notifier.endpoint,
                detail: "this notifier keeps no call statuses (off, or not a TaskStatusStore)")
        }
        return statusStore
    }

    // MARK: Lifetime

    /// Every event of this client's calls from now on (``IvyEvent/Kind/scheduled`` and
    /// ``IvyEvent/Kind/callerResumed``), while the stream is iterated.
    ///
    /// - Parameter limit: Events kept for a slow reader; older ones are dropped past this.
    public func events(bufferingNewest limit: Int = 4096) -> AsyncStream<IvyEvent> {
        broadcaster.subscribe(bufferingNewest: limit)
    }

    /// Ends waiting calls with ``IvyError/Code/closed`` and unsubscribes; waits (up to 5 s) for
    /// the status records of calls just sent; closes the connection if this client made it (the
    /// URL initialiser).
    public func close() async {
        guard !isClosed.exchange(true, ordering: .relaxed) else { return }
        subscription.cancel()
        sweeper.cancel()
        router.finishAll(with: IvyError(.closed))
        // The statuses of calls just sent are recorded before the connection goes.
        await pendingWrites.drain(within: .seconds(5))
        if ownsConnection { await connection.close() }
        broadcaster.finish()
    }

    // MARK: Ids

    /// `<producer id>-<64 random bits>`: unguessable, so nobody without the key can aim a
    /// forged "could not decrypt" notice at a given call.
    private func nextTaskID() -> String {
        let prefix = producerID.utf8
        return String(unsafeUninitializedCapacity: prefix.count + 17) { buffer in
            var end = buffer.initialize(fromContentsOf: prefix)
            buffer[end] = UInt8(ascii: "-")
            end += 1
            let rest = UnsafeMutableBufferPointer(rebasing: buffer[end...])
            return end + Self.writeHex(randomWords.next(), into: rest)
        }
    }

    private static func randomID() -> String {
        String(unsafeUninitializedCapacity: 16) { writeHex(OpenSSL.randomUInt64(), into: $0) }
    }

    /// Writes `value` as 16 lowercase hex digits; returns 16.
    private static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let digits: StaticString = "0123456789abcdef"
        for index in 0..<16 {
            buffer[index] = digits.utf8Start[Int((value >> (60 - 4 * UInt64(index))) & 15)]
        }
        return 16
    }
}

/// When a call may start: `after` a duration from now or `at` a time; nil for now.
private struct StartTime {
    /// How long from now the call waits; zero for a start time already past.
    var delay: Duration

    /// So that the `eta` stays a time every reader accepts (before the year 9999).
    static let longest = Duration.seconds(100 * 365 * 86_400)

    /// - Throws: ``IvyError/Code/invalidConfiguration`` for both given or a negative `after`.
    init?(after: Duration?, at: Date?) throws(IvyError) {
        switch (after, at) {
        case (nil, nil):
            return nil
        case (.some, .some):
            throw IvyError(.invalidConfiguration, detail: "give a call after: or at:, not both")
        case (let after?, nil):
            guard after >= .zero, after <= Self.longest else {
                throw IvyError.invalidConfiguration("after", mustBe: "from zero to 100 years", got: after)
            }
            delay = after
        case (nil, let at?):
            let seconds = at.timeIntervalSinceNow
            guard seconds <= Self.longest.inSeconds else {
                throw IvyError.invalidConfiguration("at", mustBe: "within 100 years", got: at)
            }
            delay = seconds > 0 ? .milliseconds(Int64((seconds * 1000).rounded(.up))) : .zero
        }
    }
}
