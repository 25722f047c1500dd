// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

/// A producer/worker over one conformance backend, with the example tasks on a fresh queue.
struct Harness: Sendable {
    let ivy: Ivy
    let tasks: TestPackage
    let registry: TaskRegistry
    let backend: any InspectableQueueBackend
    let notifier: any Notifier
    let queue: String

    /// Makes the harness, optionally starts a worker, runs `body`, then stops and closes all.
    ///
    /// - Parameters:
    ///   - worker: Options of the in-process worker; nil for none.
    ///   - register: Registers extra tasks for the test on the harness's queue.
    static func run(
        _ kind: ConformanceBackend, worker: WorkerOptions? = WorkerOptions(concurrency: 8),
        resultTimeout: Duration = .seconds(20), _ body: (Harness) async throws -> Void,
        register: (TaskRegistry, String) throws -> Void = { _, _ in }
    ) async throws {
        let (backend, notifier) = try await kind.open()
        let queue = freshQueue()
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: queue)
        try register(registry, queue)
        let ivy = try await Ivy(
            registry: registry, backend: backend, notifier: notifier,
            options: IvyOptions(
                resultTimeout: resultTimeout, notificationChannel: "ivy-notifier-\(queue)",
                logger: SilentLogger()))
        let harness = Harness(
            ivy: ivy, tasks: tasks, registry: registry, backend: backend, notifier: notifier, queue: queue)
        let serving = worker.map { options in Task { try await ivy.listen(queues: [queue], options: options) }
        }
        do { try await body(harness) } catch {
            serving?.cancel()
            _ = try? await serving?.value
            await ivy.close()
            throw error
        }
        serving?.cancel()
        try await serving?.value
        await ivy.close()
    }

    func size() async throws -> QueueSize { try await backend.size(of: queue) }

    func deadLetters() async throws -> [DeadLetter] { try await backend.deadLetters(of: queue, count: 100) }

    /// Sends raw bytes to the harness queue, as a foreign producer would.
    func sendRaw(_ text: String) async throws -> String {
        try await backend.send(Array(text.utf8), to: queue)
    }
}
