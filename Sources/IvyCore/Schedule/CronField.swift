// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// The values one field of a cron expression allows, as a bit set: bit `n` set allows `n`.
///
/// Every field's values lie in 0...59, so one `UInt64` holds any field, and the next allowed
/// value is one count of trailing zeros away rather than a loop.
struct CronField: Sendable, Hashable {
    /// Which of the six fields a value belongs to: its name in errors, its range and its names.
    struct Kind: Sendable {
        /// The field's name as error messages give it, such as `day-of-month`.
        let name: String
        /// The values a number in this field may take.
        let range: ClosedRange<Int>
        /// The values `*` stands for: the range, except that day-of-week's 7 is only an alias.
        let all: ClosedRange<Int>
        /// Three-letter names for the values from `all.lowerBound` on, upper case.
        let names: [String]

        /// The largest step: one that reaches only the first value of `all`.
        var largestStep: Int { all.count }

        static let second = Kind(name: "second", range: 0...59, all: 0...59, names: [])
        static let minute = Kind(name: "minute", range: 0...59, all: 0...59, names: [])
        static let hour = Kind(name: "hour", range: 0...23, all: 0...23, names: [])
        static let dayOfMonth = Kind(name: "day-of-month", range: 1...31, all: 1...31, names: [])
        static let month = Kind(
            name: "month", range: 1...12, all: 1...12,
            names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
        // 0 and 7 are both Sunday, as in every cron since Vixie's.
        static let dayOfWeek = Kind(
            name: "day-of-week", range: 0...7, all: 0...6,
            names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
    }

    private var bits: UInt64 = 0

    /// An empty set; the parser fills it.
    init() {}

    /// Every value in `range`, which must lie in 0...63.
    init(_ range: ClosedRange<Int>) {
        for value in range { insert(value) }
    }

    /// Allows `value`, which must lie in 0...63.
    mutating func insert(_ value: Int) {
        bits |= 1 << UInt64(value)
    }

    /// Disallows `value`, which must lie in 0...63.
    mutating func remove(_ value: Int) {
        bits &= ~(1 << UInt64(value))
    }

    /// Whether `value` is allowed; false for values outside 0...63.
    func contains(_ value: Int) -> Bool {
        (0..<64).contains(value) && bits & (1 << UInt64(value)) != 0
    }

    /// The smallest allowed value not below `value`, or nil when there is none (the caller
    /// carries into the next larger field).
    func first(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let rest = bits >> UInt64(max(value, 0))
        return rest == 0 ? nil : max(value, 0) + rest.trailingZeroBitCount
    }

    /// The allowed values, smallest first.
    var values: [Int] { (0..<64).filter(contains) }
}
