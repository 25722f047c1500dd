// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import Synchronization

/// Calls registered tasks through a queue (producer) and runs them (worker).
///
/// ```swift
/// let registry = TaskRegistry()
/// let tasks = try TestPackage.register(in: registry)
/// let ivy = try await Ivy(registry: registry, backend: MemoryQueueBackend(), notifier: MemoryNotifier())
/// let worker = Task { try await ivy.listen(queues: ["testpackage"], concurrency: 16) }
/// let value = try await ivy.call(tasks.factorial, 5)    // 120
/// worker.cancel()
/// await ivy.close()
/// ```
///
/// Each instance subscribes once, to its own channel `<base>:<producer id>`, and routes every
/// result that arrives there to its caller by task id.
public final class Ivy: Sendable {
    public let registry: TaskRegistry
    public let options: IvyOptions
    /// A random id naming this producer in its channel and its task ids.
    public let producerID: String
    /// The channel this producer's results come back on.
    public let notificationChannel: String

    let backend: any QueueBackend
    let notifier: any Notifier
    let codec: MessageCodec
    private let router = ResultRouter()
    private let broadcaster = EventBroadcaster()
    private let subscription: NotifierSubscription
    private let sweeper: Task<Void, Never>
    private let isClosed = Atomic<Bool>(false)
    private let randomWords = RandomWords()

    /// Makes a producer/worker over a backend and a notifier, and subscribes to its channel.
    ///
    /// ``close()`` closes the backend and the notifier too.
    public init(
        registry: TaskRegistry, backend: any QueueBackend, notifier: any Notifier,
        options: IvyOptions = .init()
    ) async throws {
        do { try options.validate() } catch {
            await notifier.close()
            await backend.close()
            throw error
        }
        self.registry = registry
        self.options = options
        self.backend = backend
        self.notifier = notifier
        codec = MessageCodec(encryption: options.encryption)
        producerID = Self.randomID()
        notificationChannel = "\(options.notificationChannel):\(producerID)"
        // Results are routed on the notifier's own thread: the caller's task is the only one
        // to wake.
        do {
            subscription = try await notifier.subscribe(to: notificationChannel) {
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
            // They were handed over to this instance, which will not exist to close them.
            await notifier.close()
            await backend.close()
            throw error
        }
        sweeper = Task { [router] in await router.sweep() }
    }

    deinit {
        subscription.cancel()
        sweeper.cancel()
    }

    // MARK: Producer

    /// Sends a call without waiting for its outcome; returns its task id.
    ///
    /// No caller is waiting: if the task wants results, the worker publishes it on the base
    /// channel, as node ivy does for messages without a notification channel.
    @discardableResult
    public func enqueue<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument
    ) async throws -> String {
        let id = nextTaskID()
        let message = TaskMessage(
            name: task.name, args: try ArgumentEncoder.encode(repeat each arguments), id: id,
            createdAt: Date())
        try await send(message, queue: task.options.queue)
        return id
    }

    /// Sends a call and returns once the queue accepted it; await the result on what it returns.
    ///
    /// - Parameters:
    ///   - task: The registered task to call.
    ///   - arguments: Its arguments, as its parameter types.
    ///   - timeout: How long the result is awaited, from now (``IvyOptions/resultTimeout`` by
    ///     default). Workers drop the message once it has passed.
    public func delayedCall<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        timeout: Duration? = nil
    ) async throws -> PendingResult<Result> {
        let (message, pending) = try prepareCall(task, repeat each arguments, timeout: timeout)
        do {
            try await send(message, queue: task.options.queue)
        } catch {
            router.finish(pending.taskID, with: .failure(error))
            throw error
        }
        return pending
    }

    /// Calls a task and waits for its result.
    ///
    /// - Throws: ``RemoteTaskError`` when it failed on the worker, ``IvyError`` when it could not be
    ///   sent or no result came within `timeout`.
    public func call<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        timeout: Duration? = nil
    ) async throws -> Result {
        let (message, pending) = try prepareCall(task, repeat each arguments, timeout: timeout)
        // The caller waits for the result alone: a send that fails ends the call through the
        // result slot, one that succeeds does not wake the caller.
        do {
            try send(message, queue: task.options.queue) { [router] outcome in
                if case .failure(let error) = outcome { router.finish(pending.taskID, with: .failure(error)) }
            }
        } catch {
            router.finish(pending.taskID, with: .failure(error))
            throw error
        }
        return try await pending.value
    }

    /// The message for a call, and its slot in the router, registered before the message is
    /// sent so that a fast result cannot arrive unseen.
    private func prepareCall<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        timeout: Duration?
    ) throws -> (TaskMessage, PendingResult<Result>) {
        guard task.options.resultWanted else {
            throw IvyError(
                .resultNotWanted, taskName: task.name,
                detail: "registered with resultWanted: false; use enqueue")
        }
        let timeout = timeout ?? options.resultTimeout
        let id = nextTaskID()
        let now = Date()
        let message = TaskMessage(
            name: task.name, args: try ArgumentEncoder.encode(repeat each arguments), id: id,
            notify: notificationChannel, createdAt: now,
            deadline: now.addingTimeInterval(timeout.inSeconds))
        let slot = router.expect(id, taskName: task.name, timeout: timeout)
        return (message, PendingResult(taskID: id, taskName: task.name, slot: slot, events: broadcaster))
    }

    private func send(_ message: TaskMessage, queue: String) async throws {
        guard !isClosed.load(ordering: .relaxed) else { throw IvyError(.closed, taskName: message.name) }
        _ = try await backend.send(codec.encode(message), to: queue)
        Self.emitScheduled(message, queue: queue, to: broadcaster)
    }

    /// Sends without suspending; `completion` gets the outcome (after the `.scheduled` event).
    private func send(
        _ message: TaskMessage, queue: String,
        completion: @escaping @Sendable (Result<String, any Error>) -> Void
    ) throws {
        guard !isClosed.load(ordering: .relaxed) else { throw IvyError(.closed, taskName: message.name) }
        backend.send(codec.encode(message), to: queue) { [broadcaster] outcome in
            if case .success = outcome { Self.emitScheduled(message, queue: queue, to: broadcaster) }
            completion(outcome)
        }
    }

    private static func emitScheduled(_ message: TaskMessage, queue: String, to broadcaster: EventBroadcaster)
    {
        broadcaster.emit(
            .scheduled(
                TaskEventContext(
                    taskName: message.name, taskID: message.id ?? "", queue: queue, attempt: message.attempt))
        )
    }

    // MARK: Worker

    /// Runs the registered tasks from `queues` until the calling task is cancelled, then drains
    /// within the grace period and returns.
    ///
    /// - Parameters:
    ///   - queues: The queues to consume; every queue of the registry by default.
    ///   - workerOptions: Concurrency, visibility timeout, grace period and the like.
    /// - Throws: ``IvyError/Code/invalidConfiguration`` for options out of range or no queue.
    public func listen(queues: [String]? = nil, options workerOptions: WorkerOptions = .init()) async throws {
        let queues = queues ?? registry.queues
        guard !queues.isEmpty else {
            throw IvyError(
                .invalidConfiguration, detail: "no queue to listen on: register a task or name a queue")
        }
        guard !queues.contains("") else {
            throw IvyError.invalidConfiguration("queues", mustBe: "non-empty names", got: "\"\"")
        }
        try workerOptions.validate()
        try await serve(backend, queues: queues, options: workerOptions)
    }

    /// Runs the registered tasks with `concurrency` at once; see ``listen(queues:options:)``.
    public func listen(queues: [String]? = nil, concurrency: Int) async throws {
        try await listen(queues: queues, options: WorkerOptions(concurrency: concurrency))
    }

    private func serve<Backend: QueueBackend>(
        _ backend: Backend, queues: [String], options workerOptions: WorkerOptions
    ) async throws {
        guard !isClosed.load(ordering: .relaxed) else { throw IvyError(.closed) }
        let worker = Worker(
            backend: backend, notifier: notifier, registry: registry, codec: codec, queues: queues,
            options: workerOptions, defaultChannel: options.notificationChannel, events: broadcaster,
            logger: options.logger)
        await worker.run()
    }

    // MARK: Lifetime

    /// Every event from now on, producer's and worker's, while the stream is iterated.
    ///
    /// - Parameter limit: Events kept for a slow reader; older ones are dropped past this.
    public func events(bufferingNewest limit: Int = 4096) -> AsyncStream<IvyEvent> {
        broadcaster.subscribe(bufferingNewest: limit)
    }

    /// Ends waiting calls with ``IvyError/Code/closed``, unsubscribes and closes the backend and
    /// the notifier. Stop workers (cancel their `listen`) first.
    public func close() async {
        guard !isClosed.exchange(true, ordering: .relaxed) else { return }
        subscription.cancel()
        sweeper.cancel()
        router.finishAll(with: IvyError(.closed))
        await notifier.close()
        await backend.close()
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
