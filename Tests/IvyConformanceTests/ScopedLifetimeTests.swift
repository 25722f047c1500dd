// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy
import IvyTestSupport
import Testing

/// The `with…` helpers close what they made, whether the body returns or throws.
@Suite("Scoped lifetimes")
struct ScopedLifetimeTests {
    private struct Boom: Error {}

    @Test func withIvyClientClosesTheClientOnEveryPath() async throws {
        let registry = TaskRegistry()
        let task = try registry.register("scoped.echo", queue: "scoped") { (n: Int) in n }
        let kept = Locked<IvyClient?>(nil)
        let options = ClientOptions(logger: SilentLogger(), encryption: nil)
        let id = try await withIvyClient(registry: registry, queue: "memory://", options: options) { client in
            kept.withLock { $0 = client }
            return try await client.enqueue(task, 1)
        }
        #expect(!id.isEmpty)
        let afterReturn = await #expect(throws: IvyError.self) { try await kept.value?.enqueue(task, 2) }
        #expect(afterReturn?.code == .closed)
        await #expect(throws: Boom.self) {
            try await withIvyClient(registry: registry, queue: "memory://", options: options) { client in
                kept.withLock { $0 = client }
                throw Boom()
            }
        }
        let afterThrow = await #expect(throws: IvyError.self) { try await kept.value?.enqueue(task, 3) }
        #expect(afterThrow?.code == .closed)
    }

    @Test func withIvyWorkerAndConnectionCloseWhatTheyMade() async throws {
        let registry = TaskRegistry()
        let double = try registry.register("scoped.double", queue: "scoped") { (n: Int) in 2 * n }
        let kept = Locked<IvyWorker?>(nil)
        let value = try await withIvyConnection { connection in
            let client = try await IvyClient(
                registry: registry, connection: connection, options: ClientOptions(logger: SilentLogger()))
            let worker = try IvyWorker(
                registry: registry, connection: connection, options: WorkerOptions(logger: SilentLogger()))
            let serving = Task { try await worker.run() }
            let value = try await client.call(double, 21)
            worker.stop()
            try await serving.value
            await client.close()
            return value
        }
        #expect(value == 42)
        try await withIvyWorker(
            registry: registry, queue: "memory://", options: WorkerOptions(logger: SilentLogger())
        ) { worker in
            kept.withLock { $0 = worker }
        }
        let closed = await #expect(throws: IvyError.self) { try await kept.value?.run() }
        #expect(closed?.code == .closed)
    }
}
