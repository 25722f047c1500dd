// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy
import IvyTestSupport
import Synchronization

/// A client on a connection of its own that can also serve as a worker on that connection, and
/// whose ``events()`` carry both sides: what these tests need of a process.
final class TestNode: Sendable {
    let registry: TaskRegistry
    let connection: IvyConnection
    let client: IvyClient
    private let sinks = Mutex<[AsyncStream<IvyEvent>.Continuation]>([])
    private let forwarding = Mutex<[Task<Void, Never>]>([])

    /// Connects to `queue` and `notifier` (Redis, or the test is skipped when services are not
    /// required) and subscribes the client.
    init(
        _ registry: TaskRegistry, queue: String = Services.redisURL, notifier: String? = nil,
        channel: ChannelName? = nil, timeout: Duration = .seconds(30), encryption: MessageEncryption? = nil
    ) async throws {
        self.registry = registry
        connection = try await Self.connect(queue: queue, notifier: notifier ?? queue)
        do {
            client = try await IvyClient(
                registry: registry, connection: connection,
                options: ClientOptions(
                    resultTimeout: timeout, notificationChannel: channel, logger: SilentLogger(),
                    encryption: encryption))
        } catch {
            await connection.close()
            throw error
        }
        forward(client.events())
    }

    private static func connect(queue: String, notifier: String) async throws -> IvyConnection {
        do {
            return try await IvyConnection.connect(
                queue: .url(queue), notifier: .url(notifier), logger: SilentLogger())
        } catch let error as IvyError where error.code == .connectionFailed {
            try Services.unavailable("Redis at \(queue)", error)
        }
    }

    /// The client's and this node's workers' events from now on.
    func events() -> AsyncStream<IvyEvent> {
        let (stream, sink) = AsyncStream<IvyEvent>.makeStream()
        sinks.withLock { $0.append(sink) }
        return stream
    }

    /// Serves `queues` on this node's connection until cancelled, then drains.
    func listen(queues: [QueueName], options: WorkerOptions = .init()) async throws {
        var options = options
        options.queues = queues
        options.notificationChannel = client.options.notificationChannel
        options.logger = SilentLogger()
        options.encryption = client.options.encryption
        let worker = try IvyWorker(registry: registry, connection: connection, options: options)
        forward(worker.events())
        try await worker.run()
    }

    func listen(queues: [QueueName], concurrency: Int) async throws {
        try await listen(queues: queues, options: WorkerOptions(concurrency: concurrency))
    }

    func call<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        timeout: Duration? = nil
    ) async throws -> Result {
        try await client.call(task, repeat each arguments, timeout: timeout)
    }

    func delayedCall<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, _ arguments: repeat each Argument,
        timeout: Duration? = nil
    ) async throws -> PendingResult<Result> {
        try await client.delayedCall(task, repeat each arguments, timeout: timeout)
    }

    func close() async {
        await client.close()
        await connection.close()
        for task in forwarding.withLock({ $0 }) { task.cancel() }
        for sink in sinks.withLock({ $0 }) { sink.finish() }
    }

    private func forward(_ events: AsyncStream<IvyEvent>) {
        let task = Task { [weak self] in
            for await event in events {
                for sink in self?.sinks.withLock({ $0 }) ?? [] { sink.yield(event) }
            }
        }
        forwarding.withLock { $0.append(task) }
    }
}
