// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Synchronization
import Testing

@testable import IvyCore

/// Registration, name rules and type-erased running of tasks with 0 to 3 arguments.
struct TaskRegistryTests {
    struct Point: Codable, Sendable, Equatable {
        var x: Int
        var label: String
    }

    /// Counts events, such as runs of a task body.
    final class Flag: Sendable {
        private let value = Atomic<Int>(0)
        func raise() { value.add(1, ordering: .sequentiallyConsistent) }
        var count: Int { value.load(ordering: .sequentiallyConsistent) }
    }

    /// A registry holding one task of each arity; `ran` counts body runs.
    struct Fixture {
        let registry = TaskRegistry()
        let ran = Flag()

        init() throws {
            let ran = self.ran
            try registry.register("unit.zero", queue: "q-zero") { () async throws -> String in
                ran.raise()
                return "zero"
            }
            try registry.register("unit.one", queue: "q-one") { (n: Int) async throws -> Int in
                ran.raise()
                return n * 2
            }
            try registry.register("unit.two", queue: "q-two") {
                (text: String, point: Point) async throws -> String in
                ran.raise()
                return "\(text):\(point.x):\(point.label)"
            }
            try registry.register("unit.nested.three", queue: "q-one") {
                (count: Int, weights: [Double], point: Point) async throws -> Point in
                ran.raise()
                return Point(x: point.x + count, label: "\(point.label) \(weights.reduce(0, +))")
            }
        }

        func run(_ name: String, _ args: String) async throws -> [UInt8] {
            let task = try #require(registry.task(named: name))
            return try await task.run(Array(args.utf8)[...])
        }
    }

    private func decode<Value: Decodable>(_ type: Value.Type, from result: [UInt8]) throws -> Value {
        let values = try JSONDecoder().decode([Value].self, from: Data(result))
        try #require(values.count == 1)
        return values[0]
    }

    // MARK: Running

    @Test func runsATaskWithNoArguments() async throws {
        let fixture = try Fixture()
        let result = try await fixture.run("unit.zero", "[]")
        #expect(String(decoding: result, as: UTF8.self) == #"["zero"]"#)
        #expect(try decode(String.self, from: result) == "zero")
        #expect(fixture.ran.count == 1)
    }

    @Test func runsATaskWithOneArgument() async throws {
        let fixture = try Fixture()
        #expect(String(decoding: try await fixture.run("unit.one", "[21]"), as: UTF8.self) == "[42]")
        #expect(try decode(Int.self, from: try await fixture.run("unit.one", " [ -4 ] ")) == -8)
    }

    @Test func runsATaskWithTwoArguments() async throws {
        let fixture = try Fixture()
        let result = try await fixture.run("unit.two", #"["h\u00e9 \"q\"",{"label":"p 😀","x":7}]"#)
        #expect(try decode(String.self, from: result) == "hé \"q\":7:p 😀")
    }

    @Test func runsATaskWithThreeArguments() async throws {
        let fixture = try Fixture()
        let result = try await fixture.run(
            "unit.nested.three", #"[3,[1.5,2.25,-0.75],{"x":1,"label":"w","extra":true}]"#)
        #expect(try decode(Point.self, from: result) == Point(x: 4, label: "w 3.0"))
        #expect(fixture.ran.count == 1)
    }

    @Test func runsTasksConcurrently() async throws {
        let fixture = try Fixture()
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for n in 1...200 {
                group.addTask { try decode(Int.self, from: try await fixture.run("unit.one", "[\(n)]")) }
            }
            return try await group.reduce(0, +)
        }
        #expect(total == 2 * (200 * 201 / 2))
        #expect(fixture.ran.count == 200)
    }

    @Test(arguments: [
        ("unit.zero", "[1]"),
        ("unit.one", "[]"),
        ("unit.one", "[1,2]"),
        ("unit.one", #"["1"]"#),
        ("unit.one", "[1.5]"),
        ("unit.one", "[null]"),
        ("unit.one", "[9223372036854775808]"),
        ("unit.one", "5"),
        ("unit.one", #"{"n":5}"#),
        ("unit.one", "[1"),
        ("unit.one", "[1] x"),
        ("unit.two", #"["a"]"#),
        ("unit.two", #"["a",{"x":1,"label":"p"},3]"#),
        ("unit.two", #"[{"x":1,"label":"p"},"a"]"#),
        ("unit.two", #"["a",{"x":1}]"#),
        ("unit.two", #"["a",{"x":"1","label":"p"}]"#),
        ("unit.nested.three", #"[1,[1.5],{"x":1,"label":"p"},4]"#),
        ("unit.nested.three", #"[1,[1.5,"2"],{"x":1,"label":"p"}]"#),
        ("unit.nested.three", #"[1,1.5,{"x":1,"label":"p"}]"#),
        // The last argument fails after the first two decoded: the body still must not run.
        ("unit.nested.three", #"[1,[1.5],{"x":1,"label":false}]"#),
    ])
    func undecodableArgumentsFailBeforeTheBodyRuns(_ name: String, _ args: String) async throws {
        let fixture = try Fixture()
        let error = try await #require(throws: IvyError.self) { try await fixture.run(name, args) }
        #expect(error.code == .argumentsUndecodable)
        #expect(error.taskName == name)
        #expect(fixture.ran.count == 0)
    }

    @Test func argumentErrorsDoNotQuoteTheArguments() async throws {
        let fixture = try Fixture()
        for args in [#"["s3cret-value"]"#, #"["x",{"x":"s3cret-value","label":"p"}]"#] {
            for name in ["unit.one", "unit.two"] {
                let error = try await #require(throws: IvyError.self) { try await fixture.run(name, args) }
                #expect(!"\(error)".contains("s3cret"))
            }
        }
    }

    @Test func bodyErrorsPassThroughUnchanged() async throws {
        let registry = TaskRegistry()
        try registry.register("unit.fails", queue: "q") { (n: Int) async throws -> Int in
            throw TaskFailure("Custom", "n was \(n)", retryable: false)
        }
        let task = try #require(registry.task(named: "unit.fails"))
        let failure = try await #require(throws: TaskFailure.self) {
            try await task.run(Array("[3]".utf8)[...])
        }
        #expect(failure == TaskFailure("Custom", "n was 3", retryable: false))
    }

    // MARK: Registration

    @Test func duplicateNameIsRejected() throws {
        let registry = TaskRegistry()
        try registry.register("unit.same", queue: "a") { (n: Int) async throws -> Int in n }
        let error = try #require(throws: IvyError.self) {
            try registry.register("unit.same", queue: "b") { (s: String) async throws -> String in s }
        }
        #expect(error.code == .duplicateTask)
        #expect(error.taskName == "unit.same")
        // The first registration stays in place.
        #expect(registry.task(named: "unit.same")?.options.queue == "a")
        #expect(registry.names == ["unit.same"])
    }

    @Test(arguments: [
        "", "factorial", "a..b", "a.b c", "é.x", ".a", "a.", ".", "a.b.", "a/b.c", "a.b\n", "a.b😀", "a:b.c",
        " a.b", "a.b ", "a.ｂ",
    ])
    func invalidNamesAreRejected(_ name: String) throws {
        let registry = TaskRegistry()
        let error = try #require(throws: IvyError.self) {
            try registry.register(name, queue: "q") { () async throws -> Int in 1 }
        }
        #expect(error.code == .invalidTaskName)
        #expect(registry.names.isEmpty)
        #expect(throws: IvyError.self) {
            try TaskDefinition<Int, Int>(name: name, options: TaskOptions(queue: "q"))
        }
    }

    @Test(arguments: [
        "a.b", "testpackage.factorial", "A_1.b-2.C3", "pkg.module.function.extra", "0.9", "_._", "-.-",
    ])
    func validNamesAreAccepted(_ name: String) throws {
        let registry = TaskRegistry()
        let definition = try registry.register(name, queue: "q") { () async throws -> Int in 1 }
        #expect(definition.name == name)
        #expect(registry.task(named: name)?.name == name)
    }

    @Test func registrationKeepsTheOptions() throws {
        let registry = TaskRegistry()
        let definition = try registry.register(
            "unit.options", queue: "slow", retry: .fixed(.milliseconds(5), maxAttempts: 4),
            timeout: .seconds(7),
            resultWanted: false
        ) { (n: Int) async throws -> Int in n }
        let expected = TaskOptions(
            queue: "slow", retry: .fixed(.milliseconds(5), maxAttempts: 4), timeout: .seconds(7),
            resultWanted: false)
        #expect(definition.options == expected)
        #expect(registry.task(named: "unit.options")?.options == expected)

        let defaults = try registry.register("unit.defaults", queue: "q") { () async throws -> Int in 0 }
        #expect(
            defaults.options
                == TaskOptions(queue: "q", retry: .none, timeout: .seconds(60), resultWanted: true))
    }

    @Test func namesAndQueuesAreSortedAndDistinct() throws {
        let fixture = try Fixture()
        #expect(fixture.registry.names == ["unit.nested.three", "unit.one", "unit.two", "unit.zero"])
        #expect(fixture.registry.queues == ["q-one", "q-two", "q-zero"])
        #expect(fixture.registry.task(named: "unit.missing") == nil)

        let empty = TaskRegistry()
        #expect(empty.names.isEmpty)
        #expect(empty.queues.isEmpty)
    }

    @Test func concurrentRegistrationKeepsEveryTask() async throws {
        let registry = TaskRegistry()
        let duplicates = Flag()
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<400 {
                group.addTask {
                    do throws(IvyError) {
                        try registry.register("unit.t\(index % 200)", queue: QueueName("q\(index % 3)")) {
                            () async throws -> Int in index
                        }
                    } catch {
                        if error.code == .duplicateTask { duplicates.raise() }
                    }
                }
            }
        }
        #expect(registry.names.count == 200)
        #expect(duplicates.count == 200)
        #expect(registry.queues == ["q0", "q1", "q2"])
    }

    // MARK: Argument coding

    @Test func argumentEncoderWritesOneJSONArray() throws {
        #expect(
            String(decoding: try ArgumentEncoder.encode(1, "x", [true]), as: UTF8.self) == #"[1,"x",[true]]"#)
        #expect(String(decoding: try ArgumentEncoder.encode(), as: UTF8.self) == "[]")
        let point = Point(x: 2, label: "é")
        let json = try ArgumentEncoder.encode(point, [1.5], Optional<Int>.none)
        let decoder = try ArgumentDecoder(json[...], parameterCount: 3)
        #expect(try decoder.next(Point.self) == point)
        #expect(try decoder.next([Double].self) == [1.5])
        #expect(try decoder.next(Int?.self) == nil)
    }

    @Test func encodedArgumentsRunThroughTheRegistry() async throws {
        let fixture = try Fixture()
        let args = try ArgumentEncoder.encode(5, [0.5, 0.25], Point(x: -1, label: "a \"b\""))
        let task = try #require(fixture.registry.task(named: "unit.nested.three"))
        #expect(
            try decode(Point.self, from: try await task.run(args[...])) == Point(x: 4, label: "a \"b\" 0.75"))
    }

    @Test func argumentDecoderChecksTheCount() {
        #expect(throws: (any Error).self) { try ArgumentDecoder(Array("[1,2]".utf8)[...], parameterCount: 1) }
        #expect(throws: (any Error).self) { try ArgumentDecoder(Array("[]".utf8)[...], parameterCount: 1) }
        #expect(throws: (any Error).self) { try ArgumentDecoder(Array("{}".utf8)[...], parameterCount: 0) }
    }

    /// Strings the hand-written writer must escape, and the scalars it writes without `JSONEncoder`.
    static let trickyText = "nul\u{0} unit\u{1F} \"q\" \\ / \n\r\t\u{08}\u{0C} é 😀 \u{7F} \u{2028} 中"

    @Test func argumentEncoderWritesJSONThatFoundationReadsBack() throws {
        let json = try ArgumentEncoder.encode(Self.trickyText, Int.min, Int.max, true, false, 0, -1)
        let decoder = try ArgumentDecoder(json[...], parameterCount: 7)
        #expect(try decoder.next(String.self) == Self.trickyText)
        #expect(try decoder.next(Int.self) == Int.min)
        #expect(try decoder.next(Int.self) == Int.max)
        #expect(try decoder.next(Bool.self) == true)
        #expect(try decoder.next(Bool.self) == false)
        #expect(try decoder.next(Int.self) == 0)
        #expect(try decoder.next(Int.self) == -1)

        // The same bytes through JSONDecoder, which knows nothing of the fast paths.
        let text = try JSONDecoder().decode(
            [String].self, from: Data(try ArgumentEncoder.encode(Self.trickyText)))
        #expect(text == [Self.trickyText])
        let numbers = try JSONDecoder().decode(
            [Int].self, from: Data(try ArgumentEncoder.encode(Int.min, Int.max, 0)))
        #expect(numbers == [Int.min, Int.max, 0])
        #expect(!json.contains(where: { $0 < 0x20 }))
    }

    @Test func resultCodingRoundTripsScalarsAndStructures() throws {
        #expect(
            try ResultCoding.decode(String.self, from: try ResultCoding.encode(Self.trickyText))
                == Self.trickyText)
        #expect(try ResultCoding.decode(Int.self, from: try ResultCoding.encode(Int.min)) == Int.min)
        #expect(try ResultCoding.decode(Bool.self, from: try ResultCoding.encode(true)) == true)
        let point = Point(x: -3, label: Self.trickyText)
        #expect(try ResultCoding.decode(Point.self, from: try ResultCoding.encode(point)) == point)
        #expect(
            try ResultCoding.decode([Double].self, from: try ResultCoding.encode([0.5, -1e-3])) == [
                0.5, -1e-3,
            ])
        #expect(try ResultCoding.decode(Int?.self, from: try ResultCoding.encode(Int?.none)) == nil)
        #expect(String(decoding: try ResultCoding.encode(42), as: UTF8.self) == "[42]")
        #expect(throws: (any Error).self) { try ResultCoding.decode(Int.self, from: Array("[]".utf8)) }
        #expect(throws: (any Error).self) { try ResultCoding.decode(Int.self, from: Array(#"["1"]"#.utf8)) }
        #expect(throws: (any Error).self) { try ResultCoding.decode(String.self, from: Array("[1]".utf8)) }
        #expect(throws: (any Error).self) { try ResultCoding.decode(Bool.self, from: Array("[1]".utf8)) }
        #expect(throws: (any Error).self) { try ResultCoding.decode(Int.self, from: Array("[1".utf8)) }
    }
}

extension TaskRegistryTests {
    @Test(arguments: ["[51090942171709440000]", "[1e400]", "[-1e400]", "[1.5e300]"])
    func aValidNumberThatDoesNotFitSaysSo(_ args: String) async throws {
        let registry = TaskRegistry()
        try registry.register("t.int", queue: "q") { (n: Int) in n }
        let task = try #require(registry.task(named: "t.int"))
        let error = await #expect(throws: IvyError.self) { _ = try await task.run(Array(args.utf8)[...]) }
        #expect(error?.code == .argumentsUndecodable)
        #expect(
            error?.detail == "argument 1: a JSON number that does not fit Int", "got \(error?.detail ?? "")")
    }

    @Test func aResultThatDoesNotFitSaysSo() throws {
        let error = #expect(throws: DecodingError.self) {
            _ = try ResultCoding.decode(Int.self, from: Array("[1e400]".utf8))
        }
        #expect(TaskRegistry.describe(error!) == "a JSON number that does not fit Int")
        #expect(throws: DecodingError.self) {
            _ = try ResultCoding.decode(Double.self, from: Array("[1e400]".utf8))
        }
    }
}
