// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

/// A client and a worker sharing one conformance backend, with the example tasks on a fresh
/// queue.
struct Harness: Sendable {
    let client: IvyClient
    let worker: IvyWorker?
    let tasks: TestPackage
    let registry: TaskRegistry
    let backend: any InspectableQueueBackend
    let notifier: any Notifier
    let queue: QueueName

    /// Makes the harness, optionally starts a worker, runs `body`, then stops and closes all.
    ///
    /// - Parameters:
    ///   - worker: Options of the in-process worker (its queues, logger and channel are the
    ///     harness's); nil for none.
    ///   - register: Registers extra tasks for the test on the harness's queue.
    static func run(
        _ kind: ConformanceBackend, worker: WorkerOptions? = WorkerOptions(concurrency: 8),
        resultTimeout: Duration = .seconds(60), middleware: [any TaskMiddleware] = [],
        _ body: (Harness) async throws -> Void,
        register: (TaskRegistry, QueueName) throws -> Void = { _, _ in }
    ) async throws {
        let (backend, notifier) = try await kind.open()
        let connection = IvyConnection(backend: backend, notifier: notifier)
        let queue = freshQueue()
        let channel = try ChannelName("ivy-notifier-\(queue)")
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let client: IvyClient
        let ivyWorker: IvyWorker?
        do {
            try register(registry, queue)
            client = try await IvyClient(
                registry: registry, connection: connection,
                options: ClientOptions(
                    resultTimeout: resultTimeout, notificationChannel: channel, logger: SilentLogger()))
            ivyWorker = try worker.map { options in
                var options = options
                options.queues = [queue]
                options.notificationChannel = channel
                options.logger = SilentLogger()
                return try IvyWorker(
                    registry: registry, connection: connection, options: options, middleware: middleware)
            }
        } catch {
            await connection.close()
            throw error
        }
        let harness = Harness(
            client: client, worker: ivyWorker, tasks: tasks, registry: registry, backend: backend,
            notifier: notifier, queue: queue)
        let serving = ivyWorker.map { worker in Task { try await worker.run() } }
        do { try await body(harness) } catch {
            serving?.cancel()
            _ = try? await serving?.value
            await client.close()
            await ivyWorker?.close()
            await connection.close()
            throw error
        }
        serving?.cancel()
        try await serving?.value
        await client.close()
        await ivyWorker?.close()
        await connection.close()
    }

    /// A worker of the harness's tasks on its queue and connection, for tests that start and stop
    /// their own; the caller closes it.
    func makeWorker(_ options: WorkerOptions) throws -> IvyWorker {
        var options = options
        options.queues = [queue]
        options.notificationChannel = client.options.notificationChannel
        options.logger = SilentLogger()
        return try IvyWorker(
            registry: registry, connection: IvyConnection(backend: backend, notifier: notifier),
            options: options)
    }

    /// The client's and the harness worker's events from now on, in one stream.
    func events(bufferingNewest limit: Int = 4096) -> AsyncStream<IvyEvent> {
        let (stream, sink) = AsyncStream<IvyEvent>.makeStream(bufferingPolicy: .bufferingNewest(limit))
        let feeds = [client.events(bufferingNewest: limit), worker?.events(bufferingNewest: limit)].compactMap
        {
            $0
        }.map { events in
            Task { for await event in events { sink.yield(event) } }
        }
        sink.onTermination = { _ in for feed in feeds { feed.cancel() } }
        return stream
    }

    func size() async throws -> QueueSize { try await backend.size(of: queue) }

    func deadLetters() async throws -> [DeadLetter] { try await backend.deadLetters(of: queue, count: 100) }

    /// Sends raw bytes to the harness queue, as a foreign producer would.
    func sendRaw(_ text: String) async throws -> String {
        try await backend.send(Array(text.utf8), to: queue)
    }
}
