// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Runs registered tasks from queues: the worker.
///
/// ```swift
/// let worker = try IvyWorker(registry: registry, connection: connection,
///                            options: WorkerOptions(concurrency: 16))
/// try await worker.run(untilSignal: [.terminate, .interrupt])   // or: try await worker.run()
/// ```
///
/// ``run()`` serves until its task is cancelled (or ``stop()``), then stops reserving, lets the
/// tasks in flight finish within ``WorkerOptions/gracePeriod``, releases what is left, and
/// returns. A worker subscribes to nothing: only clients wait for results. On a backend that
/// can pause queues (``PausableQueueBackend``), it reserves nothing from a paused queue until it
/// is resumed.
public final class IvyWorker: Sendable {
    public let registry: TaskRegistry
    public let options: WorkerOptions
    /// The queues it serves.
    public let queues: [QueueName]

    private let connection: IvyConnection
    /// The queue backend, for what the worker reports of its queues.
    var backend: any QueueBackend { connection.backend }
    private let ownsConnection: Bool
    private let codec: MessageCodec
    private let defaultChannel: ChannelName
    private let middleware: [any TaskMiddleware]
    /// What this worker did, counted per task and queue: what `ivy worker --metrics` serves, and
    /// what code in the process may read (to bridge to swift-metrics, say).
    public let metrics = WorkerMetrics()
    /// This worker's latest failures, which its announcements carry (``WorkerPresence``).
    public let failures = FailureLog()
    private let broadcaster: EventBroadcaster
    private let state = Mutex(State())

    private struct State {
        var isRunning = false
        var isClosed = false
        /// Set while ``run()`` serves; ``stop()`` stops it.
        var stop: (@Sendable () -> Void)?
        /// Set while ``run()`` serves: the attempts in flight per queue.
        var inFlight: (@Sendable () -> [QueueName: Int])?
        var stopRequested = false
        /// ``close()`` calls waiting for the current run to end.
        var runEnded: [CheckedContinuation<Void, Never>] = []
    }

    deinit {
        // A worker made from URLs and dropped without close(): its connection's threads go too.
        if ownsConnection, !state.withLock({ $0.isClosed }) {
            Task { [connection] in await connection.close() }
        }
    }

    /// Makes a worker over a connection it shares with others.
    ///
    /// ``close()`` leaves the connection open: whoever made it closes it.
    ///
    /// - Parameters:
    ///   - registry: The tasks it runs; it serves their queues unless ``WorkerOptions/queues``
    ///     names others.
    ///   - connection: The backend and notifier it uses, shared with others.
    ///   - options: How it consumes its queues.
    ///   - middleware: Runs around every attempt, the first outermost (``TaskMiddleware``).
    /// - Throws: ``IvyError/Code/invalidConfiguration`` for options out of range, or when there
    ///   is no queue to serve (no registered task and no ``WorkerOptions/queues``).
    public convenience init(
        registry: TaskRegistry, connection: IvyConnection, options: WorkerOptions = .init(),
        middleware: [any TaskMiddleware] = []
    ) throws(IvyError) {
        try self.init(
            registry: registry, connection: connection, owning: false, options: options,
            middleware: middleware)
    }

    /// Makes a worker; with `owning`, ``close()`` closes the connection too. Callers that own the
    /// connection run ``check(registry:options:)`` before they connect.
    package init(
        registry: TaskRegistry, connection: IvyConnection, owning: Bool, options: WorkerOptions,
        middleware: [any TaskMiddleware]
    ) throws(IvyError) {
        let (queues, channel) = try Self.check(registry: registry, options: options)
        if !registry.schedules.isEmpty, !(connection.notifier is any ScheduleStore) {
            throw IvyError(
                .unsupportedBackend, endpoint: connection.notifier.endpoint,
                detail:
                    "periodic tasks need a notifier that can elect a leader (a ScheduleStore: redis:// or memory://)"
            )
        }
        self.registry = registry
        self.options = options
        self.queues = queues
        self.connection = connection
        ownsConnection = owning
        self.middleware = middleware
        codec = MessageCodec(encryption: options.encryption)
        defaultChannel = channel
        broadcaster = EventBroadcaster(observer: { [metrics, failures, registry] event in
            // Anyone who can send may name any task: the unregistered ones share one series.
            var event = event
            if event.kind == .failed, let name = event.task?.taskName, registry.task(named: name) == nil {
                event.task?.taskName = WorkerMetrics.unknownTask
            }
            // Failures first: an announcement that reads the counts, then the failures, finds
            // every failure the counts include.
            failures.record(event)
            metrics.record(event)
        })
    }

    /// Checks the options against the registry: what ``init(registry:connection:options:)``
    /// throws, before anything is connected.
    package static func check(registry: TaskRegistry, options: WorkerOptions) throws(IvyError)
        -> (queues: [QueueName], defaultChannel: ChannelName)
    {
        try options.validate()
        let queues = options.queues ?? registry.queues
        guard !queues.isEmpty else {
            throw IvyError(
                .invalidConfiguration,
                detail: "no queue to serve: register a task or set WorkerOptions.queues")
        }
        guard let channel = options.notificationChannel else { return (queues, try ChannelName.base()) }
        return (queues, channel)
    }

    /// Serves the queues until the calling task is cancelled or ``stop()`` is called, then
    /// drains within the grace period and returns.
    ///
    /// - Throws: ``IvyError/Code/closed`` after ``close()``, or when the connection was closed
    ///   under the running worker (it then stops at once); ``IvyError/Code/alreadyRunning`` if
    ///   this worker is running already.
    public func run() async throws {
        try state.withLock { (state) throws(IvyError) in
            guard !state.isClosed else { throw IvyError(.closed) }
            guard !state.isRunning else {
                throw IvyError(.alreadyRunning, detail: "this worker is running already")
            }
            state.isRunning = true
        }
        defer {
            let waiting = state.withLock { state in
                state.isRunning = false
                state.stop = nil
                state.stopRequested = false
                defer { state.runEnded = [] }
                return state.runEnded
            }
            for closer in waiting { closer.resume() }
        }
        if await serve(connection.backend) {
            throw IvyError(
                .closed, endpoint: connection.backend.endpoint, detail: "the queue backend was closed")
        }
    }

    /// Opens the backend's existential so that the runtime is specialised for its receipts.
    /// Returns whether the backend was closed under it.
    private func serve<Backend: QueueBackend>(_ backend: Backend) async -> Bool {
        let runtime = WorkerRuntime(
            backend: backend, notifier: connection.notifier, registry: registry, codec: codec, queues: queues,
            options: options, defaultChannel: defaultChannel, events: broadcaster, middleware: middleware)
        let stopAlready = state.withLock { state in
            state.stop = { runtime.stop() }
            state.inFlight = { runtime.inFlight }
            return state.stopRequested
        }
        defer { state.withLock { $0.inFlight = nil } }
        if stopAlready { runtime.stop() }
        let announcer = presenceAnnouncer { runtime.inFlight }.map { announcer in
            Task { await announcer.run() }
        }
        await runtime.run()
        announcer?.cancel()
        await announcer?.value
        return runtime.backendWasClosed
    }

    /// What announces this worker while it runs, when its notifier keeps workers' presence.
    private func presenceAnnouncer(inFlight: @escaping @Sendable () -> [QueueName: Int]) -> PresenceAnnouncer?
    {
        guard let interval = options.presenceInterval,
            let store = connection.notifier as? any WorkerPresenceStore
        else { return nil }
        return PresenceAnnouncer(
            store: store, interval: interval, options: options, queues: queues, backend: backend.endpoint,
            metrics: metrics,
            failures: failures, inFlight: inFlight)
    }

    /// Starts a graceful stop: ``run()`` stops reserving, drains and returns. Cancelling the
    /// task that runs ``run()`` does the same. Called before ``run()``, it makes the next run
    /// return as soon as it has started.
    public func stop() {
        let stop = state.withLock { state in
            state.stopRequested = true
            return state.stop
        }
        stop?()
    }

    /// How many messages each queue has in hand now (decoding, running or settling them); empty
    /// while the worker does not run.
    public var inFlight: [QueueName: Int] { state.withLock { $0.inFlight }?() ?? [:] }

    /// Every event of the tasks this worker runs from now on, while the stream is iterated.
    ///
    /// - Parameter limit: Events kept for a slow reader; older ones are dropped past this.
    public func events(bufferingNewest limit: Int = 4096) -> AsyncStream<IvyEvent> {
        broadcaster.subscribe(bufferingNewest: limit)
    }

    /// Stops a run in progress and waits for its drain, then ends the event streams and closes
    /// the connection if this worker made it (the URL initialiser).
    public func close() async {
        let first = state.withLock { state in
            defer { state.isClosed = true }
            return !state.isClosed
        }
        guard first else { return }
        stop()
        // The tasks in flight settle their messages through the connection: it stays open
        // until they are done.
        await withCheckedContinuation { (ended: CheckedContinuation<Void, Never>) in
            let running = state.withLock { state in
                if state.isRunning { state.runEnded.append(ended) }
                return state.isRunning
            }
            if !running { ended.resume() }
        }
        if ownsConnection { await connection.close() }
        broadcaster.finish()
    }
}

extension IvyWorker {
    /// Serves like ``run()`` until one of `signals` arrives, then drains and returns: what a
    /// worker executable's `main` calls, so that `kill`, `docker stop` or Control-C let the
    /// running tasks finish.
    ///
    /// While it runs, these signals no longer end the process; afterwards, a signal no other
    /// worker watches gets back the disposition it had before (the default, ignored, or the
    /// application's own handler). Further signals during the drain are logged and otherwise
    /// ignored.
    ///
    /// - Parameters:
    ///   - signals: SIGTERM and SIGINT by default.
    ///   - onSignal: Called on the signal thread when one arrives (to print a line, say); it
    ///     must return quickly.
    public func run(
        untilSignal signals: Set<TerminationSignal> = [.terminate, .interrupt],
        onSignal: (@Sendable (TerminationSignal) -> Void)? = nil
    ) async throws {
        let watched = Dictionary(uniqueKeysWithValues: signals.map { ($0.number, $0) })
        let id = SignalWatcher.shared.watch(Set(watched.keys)) {
            [weak self, logger = options.logger] number in
            let signal = watched[number]
            logger.info("signal received; draining", ["signal": signal.map { "\($0)" } ?? "\(number)"])
            if let signal { onSignal?(signal) }
            self?.stop()
        }
        defer { SignalWatcher.shared.unwatch(id) }
        try await run()
    }
}
