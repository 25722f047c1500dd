// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore

/// Generates hostile task message bodies from a seed: messages with boundary and nonsense
/// values in every field, valid messages mutated byte by byte, and noise.
///
/// The same seed gives the same bodies, so a failure names the seed that reproduces it.
public struct MessageFuzzer: Sendable {
    /// Task names a body may call; tests register the ones that should run.
    public var taskNames: [String]
    private var random: SplitMix64

    public init(seed: UInt64, taskNames: [String]) {
        random = SplitMix64(seed: seed)
        self.taskNames = taskNames
    }

    /// The next body: messages generated field by field with any values, messages close to
    /// valid, the same mutated byte by byte, assorted structures and noise.
    public mutating func next() -> [UInt8] {
        switch random.below(10) {
        case 0..<3: return Array(generatedMessage().utf8)
        case 3..<5: return Array(generatedMessage(plausible: true).utf8)
        case 5..<8: return mutated(Array(generatedMessage(plausible: true).utf8))
        case 8: return Array(jsonValue(depth: 0).utf8)
        default: return (0..<random.below(200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        }
    }

    /// Tasks with the parameter shapes the fuzzer aims at.
    public static func registerTargets(in registry: TaskRegistry, queue: QueueName = "fuzz") throws {
        try registry.register("fuzz.add", queue: queue) { (a: Int, b: Int) async throws -> Int in
            let (sum, overflow) = a.addingReportingOverflow(b)
            guard !overflow else { throw TaskFailure("OverflowError", "overflows", retryable: false) }
            return sum
        }
        try registry.register("fuzz.echo", queue: queue) { (text: String) async throws -> String in text }
        try registry.register("fuzz.one", queue: queue) { (n: Int) async throws -> Int in n }
        try registry.register("fuzz.mixed", queue: queue) {
            (a: Int, b: String, c: Double) async throws -> String in
            "\(a)\(b)\(c)"
        }
        try registry.register("fuzz.fail", queue: queue, retry: .fixed(.zero, maxAttempts: 2)) {
            (text: String) async throws -> String in throw TaskFailure("Refused", text)
        }
    }

    // MARK: Messages

    private mutating func generatedMessage(plausible: Bool = false) -> String {
        var members: [String] = []
        let name =
            plausible && !taskNames.isEmpty ? "\"\(taskNames[random.below(taskNames.count)])\"" : pick(names)
        if plausible || random.below(8) != 0 { members.append("\"name\":\(name)") }
        if plausible || random.below(8) != 0 {
            members.append("\"args\":\(plausible ? plausibleArgs() : arguments())")
        }
        if random.below(3) == 0 {
            members.append("\"options\":\(pick(["{}", "null", "[]", "1", "{\"a\":{\"b\":[1,2]}}", "\"x\""]))")
        }
        if random.below(2) == 0 { members.append("\"id\":\(pick(ids))") }
        if random.below(3) == 0 { members.append("\"notify\":\(pick(channels))") }
        if random.below(2) == 0 { members.append("\"attempt\":\(plausible ? "1" : pick(integers))") }
        if random.below(3) == 0 { members.append("\"created_at\":\(pick(times))") }
        if random.below(3) == 0 {
            members.append("\"deadline\":\(plausible ? pick(futureTimes) : pick(times))")
        }
        if random.below(6) == 0 {
            members.append(
                "\"\(pick(["name", "args", "attempt", "extra", "é", ""]))\":\(jsonValue(depth: 1))")
        }
        if !plausible { members.shuffle(using: &random) }
        return "{" + members.joined(separator: random.below(10) == 0 ? " , " : ",") + "}"
    }

    private var names: [String] {
        taskNames.map { "\"\($0)\"" } + [
            "\"\"", "\"unknown.task\"", "\"testpackage\"", "\"a.b\\u0000c\"", "\"\\ud800.x\"", "\"𝕏.ÿ\"",
            "null", "42",
            "[\"testpackage.add\"]", "\"" + String(repeating: "n.", count: 300) + "x\"",
        ]
    }

    private var integers: [String] {
        [
            "0", "1", "2", "-1", "-0", "3", "9223372036854775807", "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809", "18446744073709551616", "1e400", "-1e400", "1.5", "1e3", "1E+2", "0.0",
            "2147483648",
            "4294967296", "99999999999999999999999999999", "\"5\"", "true", "null", "[]",
        ]
    }

    private var ids: [String] {
        [
            "\"\"", "\"x\"", "\"a-1\"", "\"\\u0000\"", "\"" + String(repeating: "i", count: 2000) + "\"", "7",
            "null", "\"💥\"",
        ]
    }

    private var channels: [String] {
        [
            "\"\"", "\"ivy-notifier\"", "\"fuzz:ch\"", "\"\\n\\r*?[\"", "null", "1",
            "\"" + String(repeating: "c", count: 600) + "\"",
        ]
    }

    private var times: [String] {
        [
            "\"2026-01-01T00:00:00Z\"", "\"1970-01-01T00:00:00.000Z\"", "\"0000-01-01T00:00:00Z\"",
            "\"9999-12-31T23:59:59.999Z\"", "\"2026-02-31T00:00:00Z\"", "\"2026-13-01T00:00:00Z\"",
            "\"2026-01-01T00:00:00+23:59\"", "\"2026-01-01T00:00:00.1234567890123456789Z\"", "\"yesterday\"",
            "\"\"",
            "0", "-1", "1e400", "null", "{}",
        ]
    }

    private var futureTimes: [String] { ["\"9999-12-31T23:59:59.999Z\"", "\"2999-01-01T00:00:00Z\""] }

    /// `args` as the tasks' parameter types nearly expect them: mostly values that fit.
    private mutating func plausibleArgs() -> String {
        switch random.below(4) {
        case 0: return "[\(integer()),\(integer())]"
        case 1: return "[\(integer())]"
        case 2: return "[\(string())]"
        default: return "[\(integer()),\(string()),\(integer())]"
        }
    }

    private mutating func integer() -> String {
        random.below(3) == 0
            ? pick(integers) : pick(["0", "7", "-12", "9223372036854775807", "-9223372036854775808"])
    }

    private mutating func arguments() -> String {
        random.below(4) == 0
            ? jsonValue(depth: 0)
            : "[" + (0..<random.below(4)).map { _ in jsonValue(depth: 1) }.joined(separator: ",") + "]"
    }

    // MARK: JSON values

    private mutating func jsonValue(depth: Int) -> String {
        let kind = depth > 3 ? random.below(4) : random.below(7)
        switch kind {
        case 0: return pick(integers)
        case 1: return string()
        case 2: return pick(["true", "false", "null"])
        case 3: return pick(["1.0", "-2.5e-308", "5e-324", "1.7976931348623157e308", "0.1"])
        case 4:
            return "[" + (0..<random.below(4)).map { _ in jsonValue(depth: depth + 1) }.joined(separator: ",")
                + "]"
        case 5:
            return "{"
                + (0..<random.below(3)).map { _ in "\(string()):\(jsonValue(depth: depth + 1))" }.joined(
                    separator: ",") + "}"
        default:
            // Nesting deeper than any decoder should follow.
            let levels = 1 + random.below(3000)
            return String(repeating: "[", count: levels) + String(repeating: "]", count: levels)
        }
    }

    private mutating func string() -> String {
        pick([
            "\"\"", "\"hello\"", "\"héllo ✓\"", "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\\ud800\"",
            "\"\\uD83D\\uDE00\"",
            "\"\\\\\\\"\\/\\b\\f\\n\\r\\t\"", "\"\\x\"", "\"\u{202E}rtl\"", "\"\u{FEFF}bom\"",
            "\"e\u{301}\u{301}\u{301}\"",
            "\"" + String(repeating: "s", count: 5000) + "\"",
        ])
    }

    // MARK: Mutation

    private mutating func mutated(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<(1 + random.below(4)) {
            guard !bytes.isEmpty else { break }
            let at = random.below(bytes.count)
            switch random.below(6) {
            case 0: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << random.below(8))
            case 1: bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(8)))
            case 2: bytes = Array(bytes[..<at])
            case 3: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
            case 4:
                bytes.insert(
                    contentsOf: Array(pick(["\"", "\\", "{", "]", ",", "\u{0}", "\u{FFFF}", "9"]).utf8),
                    at: at)
            default: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 1 + random.below(16))], at: at)
            }
        }
        return bytes
    }

    private mutating func pick(_ choices: [String]) -> String { choices[random.below(choices.count)] }
}
