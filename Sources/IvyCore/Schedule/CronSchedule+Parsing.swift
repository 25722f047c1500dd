// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension CronSchedule {
    /// What an expression means: the values each field allows and the flags that change how
    /// the fields combine. Two expressions that parse alike are the same schedule.
    struct Fields: Sendable, Hashable {
        var seconds: CronField
        var minutes: CronField
        var hours: CronField
        var daysOfMonth: CronField
        var months: CronField
        /// Sunday is 0; a 7 in the expression is stored as 0.
        var daysOfWeek: CronField
        /// Day-of-month begins with `*`, so only day-of-week restricts days (Vixie's DOM_STAR).
        var dayOfMonthIsStar: Bool
        /// Day-of-week begins with `*`, so only day-of-month restricts days (Vixie's DOW_STAR).
        var dayOfWeekIsStar: Bool
        /// Minute or hour begins with `*`: the schedule follows the clock through a daylight
        /// saving change instead of catching up or skipping repeats (Vixie's MIN_STAR|HR_STAR).
        var followsClock: Bool

        /// Whether a day matches: both day fields must allow it, unless both are restricted,
        /// when either is enough (Vixie cron's rule).
        func allowsDay(_ day: Int, weekday: Int) -> Bool {
            if dayOfMonthIsStar || dayOfWeekIsStar {
                return daysOfMonth.contains(day) && daysOfWeek.contains(weekday)
            }
            return daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        }

        /// Whether some day of some year matches, so that a search can stop at once when none
        /// does (`0 0 30 2 *`). Day-of-week alone always matches some day; day-of-month needs
        /// a month long enough (February counts with its 29th).
        var canMatch: Bool {
            if !dayOfMonthIsStar && !dayOfWeekIsStar { return true }
            let longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            return months.values.contains { month in
                daysOfMonth.first(atOrAfter: 1).map { $0 <= longest[month - 1] } ?? false
            }
        }
    }

    /// The macros and the five fields each stands for.
    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// Parses an expression: five or six fields, or one macro.
    ///
    /// - Returns: The expression with its fields separated by single spaces, and its meaning.
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the field and the token at fault.
    static func parse(_ expression: String) throws(IvyError) -> (text: String, fields: Fields) {
        let tokens = expression.split(whereSeparator: \.isWhitespace)
        if let first = tokens.first, first.hasPrefix("@") {
            let name = first.lowercased()
            guard let expansion = macros[name] else {
                let problem =
                    switch name {
                    case "@every": "is not supported: write a step such as */5 in the field it repeats"
                    case "@reboot": "is not a schedule: a worker has no boot to run at"
                    default:
                        "is unknown (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"
                    }
                throw IvyError(.invalidConfiguration, detail: "cron macro \(quoted(first)) \(problem)")
            }
            guard tokens.count == 1 else {
                throw IvyError(
                    .invalidConfiguration,
                    detail:
                        "cron macro \(quoted(first)) stands alone, but \(tokens.count - 1) more fields follow"
                )
            }
            return (String(first), try fields(expansion.split(separator: " ")))
        }
        guard tokens.count == 5 || tokens.count == 6 else {
            let detail =
                tokens.isEmpty
                ? "cron expression is empty"
                : "cron expression has \(tokens.count) fields; expected 5 (minute hour day-of-month month "
                    + "day-of-week) or 6 (second minute hour day-of-month month day-of-week)"
            throw IvyError(.invalidConfiguration, detail: detail)
        }
        return (tokens.joined(separator: " "), try fields(tokens))
    }

    /// The meaning of five or six field tokens; five have an implicit second 0.
    private static func fields(_ tokens: [Substring]) throws(IvyError) -> Fields {
        let all = tokens.count == 6 ? tokens : ["0"] + tokens
        var daysOfWeek = try field(all[5], .dayOfWeek)
        if daysOfWeek.contains(7) {
            daysOfWeek.remove(7)
            daysOfWeek.insert(0)
        }
        // Vixie cron decides "unrestricted" by the field's first character, so `*/2` counts as
        // `*` for the day rule and for daylight saving time alike.
        return Fields(
            seconds: try field(all[0], .second), minutes: try field(all[1], .minute),
            hours: try field(all[2], .hour), daysOfMonth: try field(all[3], .dayOfMonth),
            months: try field(all[4], .month), daysOfWeek: daysOfWeek,
            dayOfMonthIsStar: all[3].hasPrefix("*"), dayOfWeekIsStar: all[5].hasPrefix("*"),
            followsClock: all[1].hasPrefix("*") || all[2].hasPrefix("*"))
    }

    /// The values one field allows: a comma-separated list of items.
    private static func field(_ token: Substring, _ kind: CronField.Kind) throws(IvyError) -> CronField {
        var values = CronField()
        for item in token.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw refusal(kind, token, "has an empty list item") }
            let (range, step) = try rangeAndStep(item, kind)
            for value in stride(from: range.lowerBound, through: range.upperBound, by: step) {
                values.insert(value)
            }
        }
        return values
    }

    /// One list item: `*`, `a`, `a-b`, each optionally followed by `/step`; `a/step` runs from
    /// `a` to the field's end.
    private static func rangeAndStep(_ item: Substring, _ kind: CronField.Kind) throws(IvyError) -> (
        ClosedRange<Int>, Int
    ) {
        let parts = item.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var step = 1
        if parts.count == 2 {
            guard let number = number(parts[1]), (1...kind.largestStep).contains(number) else {
                throw refusal(kind, item, "needs a step from 1 to \(kind.largestStep)")
            }
            step = number
        }
        if parts[0] == "*" { return (kind.all, step) }
        let bounds = parts[0].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let low = try value(bounds[0], kind, item)
        let high =
            if bounds.count == 2 {
                try value(bounds[1], kind, item)
            } else {
                parts.count == 2 ? max(low, kind.all.upperBound) : low
            }
        guard low <= high else {
            throw refusal(kind, item, "is a reversed range (its start comes after its end)")
        }
        return (low...high, step)
    }

    /// A number or a name in the field's range.
    private static func value(_ text: Substring, _ kind: CronField.Kind, _ item: Substring) throws(IvyError)
        -> Int
    {
        if let number = number(text) {
            guard kind.range.contains(number) else {
                throw refusal(
                    kind, item, "is out of range \(kind.range.lowerBound)-\(kind.range.upperBound)")
            }
            return number
        }
        let isWord =
            !text.isEmpty && text.utf8.allSatisfy { (65...90).contains($0) || (97...122).contains($0) }
        guard isWord else { throw refusal(kind, item, "is not a number, name, range or step") }
        guard let first = kind.names.first, let last = kind.names.last else {
            throw refusal(kind, item, "has a name where a number belongs")
        }
        guard let index = kind.names.firstIndex(of: text.uppercased()) else {
            throw refusal(kind, item, "has an unknown name (use \(first)-\(last))")
        }
        return kind.all.lowerBound + index
    }

    /// The value of a run of ASCII digits, or nil for anything else. Saturates at a million, far
    /// beyond every field, so twenty nines are out of range rather than an overflow.
    private static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty else { return nil }
        var value = 0
        for byte in text.utf8 {
            guard (48...57).contains(byte) else { return nil }
            value = min(value * 10 + Int(byte - 48), 1_000_000)
        }
        return value
    }

    /// The error for a bad token, naming the field; the token is quoted and cut short.
    private static func refusal(_ kind: CronField.Kind, _ token: Substring, _ problem: String) -> IvyError {
        IvyError(.invalidConfiguration, detail: "cron \(kind.name) field: \(quoted(token)) \(problem)")
    }

    /// `token` in quotes with control characters escaped, at most 24 scalars of it, so an error
    /// never carries more than the token and never much of a long one.
    private static func quoted(_ token: Substring) -> String {
        let scalars = token.unicodeScalars
        guard scalars.count > 24 else { return String(reflecting: String(token)) }
        var short = String.UnicodeScalarView()
        short.append(contentsOf: scalars.prefix(24))
        return String(reflecting: String(short) + "…")
    }
}
