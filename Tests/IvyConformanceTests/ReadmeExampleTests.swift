// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import Testing

/// README.md's "Using it" example, as written there, so that the README cannot drift from the API.
@Suite("README example")
struct ReadmeExampleTests {
    @Test func usingIt() async throws {
        // Registration is typed; both sides run the same code (a registered-task plugin).
        let registry = TaskRegistry()
        let factorial = try registry.register(
            "testpackage.factorial", queue: "testpackage", retry: .exponential(maxAttempts: 10),
            timeout: .seconds(30)
        ) { (n: Int) async throws -> Int in
            (1...max(n, 1)).reduce(1, *)
        }

        // One connection, shared by a client and a worker in this process (memory:// by default).
        let connection = try await IvyConnection.connect(queue: "memory://", notifier: "memory://")

        // Worker: serves until its task is cancelled, then drains.
        let worker = try IvyWorker(
            registry: registry, connection: connection, options: .init(concurrency: 16))
        let serving = Task { try await worker.run() }

        // Client (producer)
        let client = try await IvyClient(registry: registry, connection: connection)
        let pending = try await client.delayedCall(factorial, 5)  // returns once the queue accepted it
        let value = try await pending.value  // 120
        let again = try await client.call(factorial, 6, timeout: .seconds(10))
        try await client.enqueue(factorial, 7)  // fire and forget
        let later = try await client.call(factorial, 8, after: .seconds(1))  // in 1 s or later
        try await client.enqueue(factorial, 9, at: Date(timeIntervalSinceNow: 3600))  // in an hour

        serving.cancel()
        try await serving.value
        await client.close()
        await connection.close()
        #expect(value == 120)
        // No type in module Ivy is called Ivy, so its names can be qualified.
        let _: Ivy.TaskRegistry = registry
        #expect(again == 720)
        #expect(later == 40320)
    }
}
