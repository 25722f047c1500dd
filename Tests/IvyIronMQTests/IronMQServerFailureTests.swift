// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

/// The IronMQ backend against a server that crashes or fails requests.
@Suite("IronMQ server failures", .serialized)
struct IronMQServerFailureTests {
    @Test func aServerKilledAndRestartedWithItsStateLosesNothing() async throws {
        try await IronMQServerProcess.with { server in
            let queue: QueueName = "restart"
            let backend = try await IronMQBackend.connect(url: server.url)
            let ids = try await backend.send(batch: (0..<20).map { Array(#"{"n":\#($0)}"#.utf8) }, to: queue)
            // One reserved when the server dies: its reservation survives too.
            let held = try #require(
                try await backend.reserve(from: queue, count: 1, visibility: .seconds(60), wait: .seconds(5))
                    .first)
            await server.crash()
            try await server.run()
            try await backend.ack(held)
            var seen = [held.messageID]
            while seen.count < ids.count {
                let batch = try await backend.reserve(
                    from: queue, count: 100, visibility: .seconds(60), wait: .seconds(5))
                try #require(!batch.isEmpty, "messages are missing after the restart")
                for reservation in batch { try await backend.ack(reservation) }
                seen += batch.map(\.messageID)
            }
            #expect(Set(seen) == Set(ids))
            #expect(seen.count == ids.count, "none twice")
            await backend.close()
        }
    }

    @Test func callsSurviveAServerThatFailsOneRequestInFive() async throws {
        try await IronMQServerProcess.with(["--fail-rate", "0.2"]) { server in
            let registry = TaskRegistry()
            let queue: QueueName = "flaky"
            let runs = Locked<[Int: Int]>([:])
            let record = try registry.register("flaky.record", queue: queue) { (value: Int) -> Int in
                runs.withLock { $0[value, default: 0] += 1 }
                return value
            }
            // Ten tries a request: a request failing all of them (0.2^10) would fail the test
            // about once in 50,000 runs, where five tries would once in twenty.
            var configuration = try IronMQConfiguration(url: server.url)
            configuration.attempts = 10
            let connection = IvyConnection(
                backend: try await IronMQBackend.connect(configuration: configuration),
                notifier: MemoryNotifier())
            let worker = try IvyWorker(
                registry: registry, connection: connection,
                options: WorkerOptions(concurrency: 8, pollWait: .seconds(1), logger: SilentLogger()))
            let client = try await IvyClient(
                registry: registry, connection: connection,
                options: ClientOptions(resultTimeout: .seconds(60), logger: SilentLogger()))
            let serving = Task { try await worker.run() }
            let results = try await withThrowingTaskGroup(of: Int.self) { group in
                for value in 0..<100 { group.addTask { try await client.call(record, value) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.sorted() == Array(0..<100), "every call answered once, with its own value")
            // A 503 changes nothing on the server, so no call ran twice either.
            #expect(runs.value.values.allSatisfy { $0 == 1 })
            serving.cancel()
            try await serving.value
            await client.close()
            await connection.close()
        }
    }
}
