// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyTestSupport
import Testing

@testable import IvyCore

/// Tasks called and served with JSON values instead of Swift types (`ivy call`, `--exec`).
struct UntypedTaskTests {
    @Test(arguments: ["1", " -2.5e3 ", "\"é\\n\"", "[1,[2,{}]]", "{\"a\":null}", "true", "null"])
    func rawJSONKeepsAValidValue(_ text: String) throws {
        let value = try RawJSON(validating: text)
        #expect(value.text == text.trimmingCharacters(in: .whitespaces))
    }

    @Test(arguments: ["", "01", "[1,", "{\"a\"}", "1 2", "'x'", "nul", "[1]]"])
    func rawJSONRefusesInvalidText(_ text: String) {
        let error = #expect(throws: IvyError.self) { try RawJSON(validating: text) }
        #expect(error?.code == .argumentsUndecodable)
    }

    @Test func rawJSONNestedInCodableValuesRoundTrips() throws {
        let values = [try RawJSON(validating: "{\"k\":[1,2.5,\"s\",null,true]}"), RawJSON.null]
        let decoded = try JSONDecoder().decode([RawJSON].self, from: JSONEncoder().encode(values))
        #expect(decoded.map(\.text) == ["{\"k\":[1,2.5,\"s\",null,true]}", "null"])
    }

    @Test func anUntypedHandlerGetsTheArgumentsAsWrittenAndReturnsItsResult() async throws {
        let registry = TaskRegistry()
        let seen = Locked<[String]>([])
        try registry.registerUntyped("tool.join", queue: "tool") { arguments in
            seen.withLock { $0 = arguments.map(\.text) }
            return try RawJSON(validating: "{\"count\":\(arguments.count)}")
        }
        let task = try #require(registry.task(named: "tool.join"))
        let result = try await task.run(Array("[1, \"two\" ,{\"x\":[3]}]".utf8)[...])
        #expect(String(decoding: result, as: UTF8.self) == "[{\"count\":3}]")
        #expect(seen.withLock { $0 } == ["1", "\"two\"", "{\"x\":[3]}"])

        let error = await #expect(throws: IvyError.self) { try await task.run(Array("{\"a\":1}".utf8)[...]) }
        #expect(error?.code == .argumentsUndecodable)
        #expect(error?.taskName == "tool.join")
    }

    @Test func anUntypedCallReachesATypedTaskAndItsResultComesBackAsJSON() async throws {
        let registry = TaskRegistry()
        try registry.register("tool.add", queue: "tool") { (a: Int, b: Int) in a + b }
        let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: MemoryNotifier())
        let client = try await IvyClient(registry: registry, connection: connection)
        let worker = try IvyWorker(
            registry: registry, connection: connection, options: .init(queues: ["tool"]))
        let running = Task { try await worker.run() }
        let add = try UntypedTask(name: "tool.add", options: TaskOptions(queue: "tool"))
        let sum = try await client.call(
            add, arguments: [RawJSON(validating: "2"), RawJSON(validating: "40")])
        #expect(sum.text == "42")
        let refused = await #expect(throws: RemoteTaskError.self) {
            try await client.call(add, arguments: [RawJSON(validating: "\"two\"")])
        }
        #expect(refused?.name == "ArgumentsUndecodable")
        running.cancel()
        _ = try? await running.value
        await client.close()
        await worker.close()
        await connection.close()
    }
}
