// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyTestSupport
import Testing

/// Cron expressions: what parses and what is refused (with which words), the next fire times
/// on plain days, across months, years, time zones and daylight saving changes, random text
/// that must parse or be refused without a trap, and generated expressions checked against a
/// day-by-day search on Foundation's calendar and a minute-by-minute simulation of the
/// daylight saving policy.
struct CronScheduleTests {
    // MARK: Parsing

    /// Pairs of expressions that mean the same schedule, so equal values: each syntax against
    /// its plainest spelling.
    static let equivalents: [(String, String)] = [
        ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"), ("@HOURLY", "0 * * * *"),
        ("*/15 * * * *", "0,15,30,45 * * * *"), ("5/20 * * * *", "5,25,45 * * * *"),
        ("10-40/15 * * * *", "10,25,40 * * * *"), ("0-59/30 0-23/12 * * *", "0,30 0,12 * * *"),
        ("0 0 * JAN,jul *", "0 0 * 1,7 *"), ("0 0 * Mar-May *", "0 0 * 3-5 *"),
        ("0 9 * * MON-FRI", "0 9 * * 1-5"), ("0 9 * * sun", "0 9 * * 0"), ("0 9 * * 7", "0 9 * * 0"),
        ("0 9 * * 5-7", "0 9 * * 0,5,6"), ("0 9 * * 0-7", "0 9 * * 0-6"), ("0 9 * * */2", "0 9 * * */2"),
        ("0 0 1 * 1/2", "0 0 1 * 1,3,5"), ("0 0 0 * * *", "0 0 * * *"), ("* * * * *", "0 * * * * *"),
        ("\t0  9\t* *   MON-FRI ", "0 9 * * MON-FRI"), ("0 0 1,1,1 * *", "0 0 1 * *"),
    ]

    @Test(arguments: equivalents)
    func spellingsOfTheSameScheduleAreEqual(_ pair: (String, String)) throws {
        let (left, right) = (try CronSchedule(pair.0), try CronSchedule(pair.1))
        #expect(left == right)
        #expect(left.hashValue == right.hashValue)
        let start = Date(timeIntervalSince1970: 1_735_689_600)  // 2025-01-01T00:00:00Z
        #expect(left.fireTimes(after: start, count: 20) == right.fireTimes(after: start, count: 20))
    }

    @Test func equalityComparesMeaningAndTimeZoneButKeepsTheText() throws {
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        #expect(try CronSchedule("0 0 * * *") != CronSchedule("0 0 * * *", timeZone: newYork))
        // A restricted day-of-month changes how day-of-week combines with it, so `1-31` is not `*`.
        #expect(try CronSchedule("0 0 1-31 * MON") != CronSchedule("0 0 * * MON"))
        let spaced = try CronSchedule("  0   9 * *\tMON-FRI ", timeZone: newYork)
        #expect(spaced.expression == "0 9 * * MON-FRI")
        #expect(spaced.description == "0 9 * * MON-FRI (America/New_York)")
        #expect(try CronSchedule("@daily").description == "@daily (GMT)")
    }

    /// An expression that must be refused and words its refusal must contain.
    struct Refusal: Sendable, CustomTestStringConvertible {
        let expression: String
        let words: [String]
        init(_ expression: String, _ words: String...) { (self.expression, self.words) = (expression, words) }
        var testDescription: String { String(reflecting: String(expression.prefix(40))) }
    }

    static let refusals: [Refusal] = [
        // Field counts.
        .init("", "empty"), .init("   \t ", "empty"),
        .init("* * * *", "has 4 fields", "expected 5"), .init("* * * * * * *", "has 7 fields"),
        // Out of range, in every field.
        .init("60 * * * * *", "second field", "\"60\"", "out of range 0-59"),
        .init("60 * * * *", "minute field", "\"60\"", "out of range 0-59"),
        .init("* 24 * * *", "hour field", "\"24\"", "out of range 0-23"),
        .init("* * 0 * *", "day-of-month field", "\"0\"", "out of range 1-31"),
        .init("* * 32 * *", "day-of-month field", "\"32\"", "out of range 1-31"),
        .init("* * * 0 *", "month field", "\"0\"", "out of range 1-12"),
        .init("* * * 13 *", "month field", "\"13\"", "out of range 1-12"),
        .init("* * * * 8", "day-of-week field", "\"8\"", "out of range 0-7"),
        .init("0 0 1,2,99 * *", "day-of-month field", "\"99\"", "out of range"),
        // Numbers far too big for any integer type: refused, not trapped.
        .init("99999999999999999999 * * * *", "minute field", "\"99999999999999999999\"", "out of range"),
        .init("1-99999999999999999999 * * * *", "minute field", "out of range"),
        .init("* * * * * */99999999999999999999", "day-of-week field", "step from 1 to 7"),
        .init("0 0 18446744073709551616 * *", "day-of-month field", "out of range"),
        // Reversed ranges.
        .init("5-1 * * * *", "minute field", "\"5-1\"", "reversed range"),
        .init("0 0 * * FRI-MON", "day-of-week field", "\"FRI-MON\"", "reversed range"),
        .init("0 0 * DEC-JAN *", "month field", "reversed range"),
        // Steps.
        .init("*/0 * * * *", "minute field", "\"*/0\"", "step from 1 to 60"),
        .init("1-5/0 * * * *", "minute field", "\"1-5/0\"", "step from 1 to 60"),
        .init("*/-1 * * * *", "minute field", "\"*/-1\"", "step"),
        .init("*/61 * * * *", "minute field", "step from 1 to 60"),
        .init("0 */25 * * *", "hour field", "step from 1 to 24"),
        .init("0 0 * */13 *", "month field", "step from 1 to 12"),
        .init("*/ * * * *", "minute field", "step"), .init("1/2/3 * * * *", "minute field", "step"),
        .init("*/1.5 * * * *", "minute field", "step"),
        // Empty list items.
        .init("1,,2 * * * *", "minute field", "\"1,,2\"", "empty list item"),
        .init(",1 * * * *", "minute field", "empty list item"),
        .init("0 0 * * MON,", "day-of-week field", "empty list item"),
        // Names.
        .init("* * * FOO *", "month field", "\"FOO\"", "unknown name (use JAN-DEC)"),
        .init("0 0 * * MON-FOO", "day-of-week field", "unknown name (use SUN-SAT)"),
        .init("0 0 * * MONDAY", "day-of-week field", "unknown name"),
        .init("0 0 * MON *", "month field", "unknown name"),
        .init("0 0 * * JAN", "day-of-week field", "unknown name"),
        .init("MON * * * *", "minute field", "name where a number belongs"),
        // Garbage.
        .init("-1 * * * *", "minute field", "\"-1\"", "not a number"),
        .init("1-2-3 * * * *", "minute field", "not a number"),
        .init("1.5 * * * *", "minute field", "not a number"),
        .init("*-5 * * * *", "minute field", "not a number"),
        .init("+5 * * * *", "minute field", "not a number"),
        .init("** * * * *", "minute field", "not a number"),
        .init("? * * * *", "minute field", "not a number"),
        .init("0 0 L * *", "day-of-month field", "name where a number belongs"),
        .init("0 0 * * 5#3", "day-of-week field", "not a number"),
        .init("１ * * * *", "minute field", "not a number"),  // a full-width digit
        .init("0 0 * * \u{7}", "day-of-week field", "\"\\u{07}\""),
        // Macros.
        .init("@every 5m", "@every", "not supported"), .init("@reboot", "@reboot", "not a schedule"),
        .init("@fortnightly", "\"@fortnightly\"", "unknown"), .init("@daily *", "stands alone"),
        .init("0 @daily * * *", "hour field", "not a number"),
    ]

    @Test(arguments: refusals)
    func badExpressionsAreRefusedNamingFieldAndToken(_ refusal: Refusal) {
        #expect {
            _ = try CronSchedule(refusal.expression)
        } throws: { error in
            guard let error = error as? IvyError, error.code == .invalidConfiguration else { return false }
            let detail = error.detail ?? ""
            for word in refusal.words {
                #expect(detail.contains(word), "\(String(reflecting: detail)) names \(word)")
            }
            return true
        }
    }

    @Test func aLongTokenIsCutShortInTheError() {
        let token = String(repeating: "9", count: 10_000)
        for expression in ["\(token) * * * *", "0 0 * * MON,\(token)", "@\(token)"] {
            #expect {
                _ = try CronSchedule(expression)
            } throws: { error in
                let detail = (error as? IvyError)?.detail ?? ""
                return detail.contains("99999…") && detail.count < 160
            }
        }
        // The expression itself is never echoed, only the token at fault.
        #expect {
            _ = try CronSchedule("0 0 * * * secret-looking-text extra")
        } throws: { error in
            !((error as? IvyError)?.detail ?? "secret").contains("secret")
        }
    }

    // MARK: Next fire times

    /// From `after`, the fire times to expect, in order; the schedule is in `zone`.
    struct Firing: Sendable, CustomTestStringConvertible {
        let expression: String
        let zone: String
        let after: String
        let expected: [String]
        init(_ expression: String, in zone: String = "GMT", after: String, _ expected: String...) {
            (self.expression, self.zone, self.after, self.expected) = (expression, zone, after, expected)
        }
        var testDescription: String { "\(expression) in \(zone) after \(after)" }
    }

    static let firings: [Firing] = [
        // Every minute, from a whole minute and from a fraction of a second.
        .init("* * * * *", after: "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", "2025-01-01T00:02:00Z"),
        .init("* * * * *", after: "2025-01-01T00:00:30.500Z", "2025-01-01T00:01:00Z"),
        // Every five minutes, across an hour, a day and a year.
        .init(
            "*/5 * * * *", after: "2025-01-01T10:57:00Z", "2025-01-01T11:00:00Z", "2025-01-01T11:05:00Z"),
        .init("*/5 * * * *", after: "2025-12-31T23:55:00Z", "2026-01-01T00:00:00Z"),
        // Six fields: every second, every 15 seconds.
        .init("* * * * * *", after: "2025-01-01T10:00:00Z", "2025-01-01T10:00:01Z", "2025-01-01T10:00:02Z"),
        .init("* * * * * *", after: "2025-01-01T10:00:59.999Z", "2025-01-01T10:01:00Z"),
        .init(
            "*/15 * * * * *", after: "2025-01-01T10:00:50Z", "2025-01-01T10:01:00Z", "2025-01-01T10:01:15Z",
            "2025-01-01T10:01:30Z"),
        .init("30 0 12 * * *", after: "2025-01-01T12:00:30Z", "2025-01-02T12:00:30Z"),
        // Weekdays at nine, from Friday's run to Monday's.
        .init(
            "0 9 * * MON-FRI", after: "2025-01-03T09:00:00Z", "2025-01-06T09:00:00Z", "2025-01-07T09:00:00Z"),
        // Both day fields restricted: either matches (Fridays, and the 13th, a Monday).
        .init(
            "0 0 13 * FRI", after: "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z", "2025-01-10T00:00:00Z",
            "2025-01-13T00:00:00Z", "2025-01-17T00:00:00Z"),
        // Day-of-month begins with `*`: both must match (odd days that are Mondays).
        .init("0 0 */2 * MON", after: "2025-01-01T00:00:00Z", "2025-01-13T00:00:00Z", "2025-01-27T00:00:00Z"),
        // The first of February on a Monday: 2027.
        .init("0 0 */31 2 MON", after: "2025-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
        .init("0 0 * * 7", after: "2025-01-01T00:00:00Z", "2025-01-05T00:00:00Z"),
        // February 29th, three years ahead; and across 2100, which has none.
        .init("0 0 29 2 *", after: "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"),
        .init("0 0 29 2 *", after: "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"),
        // The 31st skips the months that lack one.
        .init(
            "0 0 31 * *", after: "2025-01-01T00:00:00Z", "2025-01-31T00:00:00Z", "2025-03-31T00:00:00Z",
            "2025-05-31T00:00:00Z", "2025-07-31T00:00:00Z", "2025-08-31T00:00:00Z", "2025-10-31T00:00:00Z",
            "2025-12-31T00:00:00Z", "2026-01-31T00:00:00Z"),
        // Macros.
        .init("@yearly", after: "2025-06-15T12:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        .init("@yearly", after: "2025-12-31T23:59:59.500Z", "2026-01-01T00:00:00Z"),
        .init("@monthly", after: "2025-01-31T12:00:00Z", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z"),
        .init("@weekly", after: "2025-01-01T00:00:00Z", "2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"),
        .init("@daily", after: "2025-02-28T00:00:00Z", "2025-03-01T00:00:00Z"),
        .init("@hourly", after: "2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z"),
        // Before 1970.
        .init("0 0 1 1 *", after: "1900-06-01T00:00:00Z", "1901-01-01T00:00:00Z"),
        .init("0 12 * * SUN", after: "1969-12-31T00:00:00Z", "1970-01-04T12:00:00Z"),
        // Time zones: nine in New York is 14:00 GMT in winter, 13:00 in summer.
        .init("0 9 * * *", in: "America/New_York", after: "2025-01-15T00:00:00Z", "2025-01-15T14:00:00Z"),
        .init("0 9 * * *", in: "America/New_York", after: "2025-07-15T00:00:00Z", "2025-07-15T13:00:00Z"),
        .init("0 9 * * *", after: "2025-07-15T00:00:00Z", "2025-07-15T09:00:00Z"),
        .init("0 0 1 * *", in: "Asia/Kolkata", after: "2025-01-01T00:00:00Z", "2025-01-31T18:30:00Z"),

        // Spring forward, Europe/Berlin 2025-03-30: 02:00 CET becomes 03:00 CEST (01:00Z).
        // A fixed time in the gap fires when the gap closes, once, then as usual.
        .init(
            "30 2 * * *", in: "Europe/Berlin", after: "2025-03-29T12:00:00Z", "2025-03-30T01:00:00Z",
            "2025-03-31T00:30:00Z"),
        .init(
            "0,30 2 * * *", in: "Europe/Berlin", after: "2025-03-29T12:00:00Z", "2025-03-30T01:00:00Z",
            "2025-03-31T00:00:00Z", "2025-03-31T00:30:00Z"),
        // 03:00 is both the catch-up and its own time: one fire.
        .init(
            "0 2,3 * * *", in: "Europe/Berlin", after: "2025-03-29T12:00:00Z", "2025-03-30T01:00:00Z",
            "2025-03-31T00:00:00Z"),
        .init("30 2 * * *", in: "Europe/Berlin", after: "2025-03-30T00:59:59.500Z", "2025-03-30T01:00:00Z"),
        // Clock-following schedules keep their real-time rhythm: 01:30 CET, then 03:00 CEST.
        .init(
            "*/30 * * * *", in: "Europe/Berlin", after: "2025-03-30T00:15:00Z", "2025-03-30T00:30:00Z",
            "2025-03-30T01:00:00Z", "2025-03-30T01:30:00Z"),
        .init(
            "@hourly", in: "Europe/Berlin", after: "2025-03-29T23:30:00Z", "2025-03-30T00:00:00Z",
            "2025-03-30T01:00:00Z", "2025-03-30T02:00:00Z"),
        // Fall back, Europe/Berlin 2025-10-26: 03:00 CEST becomes 02:00 CET (01:00Z).
        // A fixed time in the repeated hour fires at its first occurrence only.
        .init(
            "30 2 * * *", in: "Europe/Berlin", after: "2025-10-25T12:00:00Z", "2025-10-26T00:30:00Z",
            "2025-10-27T01:30:00Z"),
        .init("30 2 * * *", in: "Europe/Berlin", after: "2025-10-26T01:10:00Z", "2025-10-27T01:30:00Z"),
        .init(
            "*/30 * * * *", in: "Europe/Berlin", after: "2025-10-26T00:15:00Z", "2025-10-26T00:30:00Z",
            "2025-10-26T01:00:00Z", "2025-10-26T01:30:00Z", "2025-10-26T02:00:00Z"),

        // Spring forward, America/New_York 2025-03-09: 02:00 EST becomes 03:00 EDT (07:00Z).
        .init(
            "30 2 * * *", in: "America/New_York", after: "2025-03-09T05:00:00Z", "2025-03-09T07:00:00Z",
            "2025-03-10T06:30:00Z"),
        .init(
            "*/30 * * * *", in: "America/New_York", after: "2025-03-09T06:15:00Z", "2025-03-09T06:30:00Z",
            "2025-03-09T07:00:00Z", "2025-03-09T07:30:00Z"),
        .init(
            "@hourly", in: "America/New_York", after: "2025-03-09T05:30:00Z", "2025-03-09T06:00:00Z",
            "2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z"),
        // Fall back, America/New_York 2025-11-02: 02:00 EDT becomes 01:00 EST (06:00Z).
        .init(
            "30 1 * * *", in: "America/New_York", after: "2025-11-01T12:00:00Z", "2025-11-02T05:30:00Z",
            "2025-11-03T06:30:00Z"),
        .init("30 1 * * *", in: "America/New_York", after: "2025-11-02T05:45:00Z", "2025-11-03T06:30:00Z"),
        .init("30 1 * * *", in: "America/New_York", after: "2025-11-02T06:10:00Z", "2025-11-03T06:30:00Z"),
        .init(
            "*/30 * * * *", in: "America/New_York", after: "2025-11-02T04:45:00Z", "2025-11-02T05:00:00Z",
            "2025-11-02T05:30:00Z", "2025-11-02T06:00:00Z", "2025-11-02T06:30:00Z", "2025-11-02T07:00:00Z"),
        // Started inside the second pass, a clock-following schedule carries on in it.
        .init("*/30 * * * *", in: "America/New_York", after: "2025-11-02T06:10:00Z", "2025-11-02T06:30:00Z"),
        .init(
            "@hourly", in: "America/New_York", after: "2025-11-02T04:30:00Z", "2025-11-02T05:00:00Z",
            "2025-11-02T06:00:00Z", "2025-11-02T07:00:00Z"),
        .init(
            "0 9 * * *", in: "America/New_York", after: "2025-11-01T12:00:00Z", "2025-11-01T13:00:00Z",
            "2025-11-02T14:00:00Z"),

        // Havana springs forward at midnight (2025-03-09, 00:00 CST becomes 01:00 CDT, 05:00Z):
        // the day has no midnight, and @daily fires at its first instant.
        .init(
            "@daily", in: "America/Havana", after: "2025-03-08T12:00:00Z", "2025-03-09T05:00:00Z",
            "2025-03-10T04:00:00Z"),
        // Cairo too (2025-04-25, 00:00 EET becomes 01:00 EEST): every two hours skips the
        // missing midnight but not the day.
        .init(
            "0 */2 * * *", in: "Africa/Cairo", after: "2025-04-24T21:10:20Z", "2025-04-24T23:00:00Z",
            "2025-04-25T01:00:00Z", "2025-04-25T03:00:00Z"),
        // Beirut falls back at midnight (2025-10-26, 00:00 EEST becomes 23:00 EET on the 25th).
        .init(
            "30 23 * * *", in: "Asia/Beirut", after: "2025-10-25T12:00:00Z", "2025-10-25T20:30:00Z",
            "2025-10-26T21:30:00Z"),
        // Lord Howe Island shifts by half an hour (2025-10-05, 02:00 becomes 02:30, 15:30Z).
        .init("15 2 * * *", in: "Australia/Lord_Howe", after: "2025-10-04T12:00:00Z", "2025-10-04T15:30:00Z"),
        // Samoa skipped 2011-12-30 altogether: that day's noon fires when the gap closes.
        .init(
            "0 12 * * *", in: "Pacific/Apia", after: "2011-12-29T12:00:00Z", "2011-12-29T22:00:00Z",
            "2011-12-30T10:00:00Z", "2011-12-30T22:00:00Z"),
    ]

    @Test(arguments: firings)
    func nextFireTimes(_ firing: Firing) throws {
        let zone = try #require(TimeZone(identifier: firing.zone))
        let schedule = try CronSchedule(firing.expression, timeZone: zone)
        let times = schedule.fireTimes(after: try date(firing.after), count: firing.expected.count)
        #expect(times.map(format) == firing.expected)
    }

    @Test func schedulesThatCannotFireGiveNilAtOnce() throws {
        for expression in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 0 30-31 FEB *", "0 0 31 2-4/2 *"] {
            let schedule = try CronSchedule(expression)
            #expect(schedule.next(after: try date("2025-01-01T00:00:00Z")) == nil, "\(expression)")
            #expect(schedule.fireTimes(after: .distantPast, count: 3).isEmpty, "\(expression)")
        }
        // With day-of-week also restricted, either field is enough, so February 30th fires on Mondays.
        let mondays = try CronSchedule("0 0 30 2 MON")
        #expect(try mondays.next(after: date("2025-01-01T00:00:00Z")).map(format) == "2025-02-03T00:00:00Z")
    }

    @Test func datesOutsideTheSupportedRangeGiveNil() throws {
        let schedule = try CronSchedule("* * * * *")
        #expect(schedule.next(after: Date(timeIntervalSince1970: .infinity)) == nil)
        #expect(schedule.next(after: Date(timeIntervalSince1970: -.infinity)) == nil)
        #expect(schedule.next(after: Date(timeIntervalSince1970: .nan)) == nil)
        #expect(schedule.next(after: Date(timeIntervalSince1970: 1e15)) == nil)
        let farthest = try #require(schedule.next(after: .distantFuture))
        #expect(farthest > .distantFuture && farthest.timeIntervalSince(.distantFuture) <= 60)
        #expect(schedule.next(after: .distantPast) != nil)
    }

    // MARK: Generated expressions

    /// Random strings built from cron's own characters, names, huge numbers and noise, and
    /// valid expressions mutated: each parses or is refused with a reason, and none traps.
    /// What parses gives fire times that move forward.
    // The heavy tests run their cases one at a time and yield often: CPU-bound work that held
    // both of a small machine's pool threads starved other suites' calls past their timeouts.
    @Test(.serialized, arguments: [1, 0x5eed_c10c, 20_260_101] as [UInt64])
    func randomTextParsesOrIsRefusedWithAReason(seed: UInt64) async {
        var random = SplitMix64(seed: seed)
        let pieces = [
            "*", "*", "/", "-", ",", " ", " ", "  ", "\t", "0", "1", "5", "7", "12", "23", "29", "31", "59",
            "60", "99999999999999999999", "18446744073709551615", "-", "MON", "fri", "Jan", "DEC", "SUN",
            "FOO", "@", "@daily", "@every", "?", "L", "#", "W", "é", "\u{0}", "１", "\u{301}", "🕐", ".",
        ]
        let fieldPieces = [
            "*", "*", "*/5", "/", "-", ",", "1", "2", "7", "30", "0-5", "MON", "jan", "99999999999",
        ]
        let valid = ["*/5 * * * *", "0 9 * * MON-FRI", "0 0 1,15 * *", "30 */2 1-10/3 JAN-JUN SAT,SUN"]
        var parsed = 0
        let start = Date(timeIntervalSince1970: 1_735_689_600)
        for index in 0..<1_500 {
            if index % 50 == 0 { await Task.yield() }
            var text: String
            switch random.next() % 3 {
            case 0:
                // A valid expression with a few bytes replaced.
                var bytes = Array(valid[Int(random.next() % UInt64(valid.count))].utf8)
                for _ in 0...(random.next() % 3) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
                text = String(decoding: bytes, as: UTF8.self)
            case 1:
                // Five or six fields, half of them `*`, the rest of cron's own pieces: close to valid.
                text = (0..<(5 + Int(random.next() % 2))).map { _ in
                    random.next() % 2 == 0
                        ? "*"
                        : (0...Int(random.next() % 3)).map { _ in
                            fieldPieces[Int(random.next() % UInt64(fieldPieces.count))]
                        }
                        .joined()
                }
                .joined(separator: " ")
            default:
                text = (0..<Int(random.next() % 16)).map { _ in
                    pieces[Int(random.next() % UInt64(pieces.count))]
                }
                .joined()
            }
            do throws(IvyError) {
                let schedule = try CronSchedule(text)
                parsed += 1
                let times = schedule.fireTimes(after: start, count: 3)
                #expect(zip([start] + times, times).allSatisfy { $0 < $1 }, "\(String(reflecting: text))")
            } catch {
                #expect(error.code == .invalidConfiguration)
                #expect(!(error.detail ?? "").isEmpty, "\(String(reflecting: text)) is refused with a reason")
            }
        }
        #expect(parsed > 15, "enough random text parses to exercise the search (seed \(seed))")
    }

    /// Valid expressions generated field by field, with the values each field allows known, so
    /// a brute-force search over the days of a Gregorian calendar can check every answer.
    @Test(.serialized, arguments: [7, 0xdec0_de, 31_415_926] as [UInt64])
    func generatedSchedulesMatchABruteForceSearch(seed: UInt64) async throws {
        var generator = ExpressionGenerator(seed: seed)
        for index in 0..<150 {
            await Task.yield()
            let generated = generator.next()
            let schedule = try CronSchedule(generated.text)
            // From 1950 to 2100, at any second and sometimes a fraction of one.
            let seconds = -631_152_000 + Double(generator.random.next() % 4_733_510_400)
            let start = Date(timeIntervalSince1970: seconds + (index % 3 == 0 ? 0.25 : 0))
            let expected = generated.bruteForceNext(after: start)
            #expect(schedule.next(after: start) == expected, "\(generated.text) after \(format(start))")
        }
    }

    /// Daily schedules with generated minute and hour fields, around each 2025 offset change of
    /// zones that shift at 02:00, at midnight and by half an hour, against a minute-by-minute
    /// simulation of the policy on Foundation's calendar: a clock-following schedule fires
    /// whenever the clock shows a matching time; a fixed-time one fires at a matching time
    /// the clock shows for the first time, and once at the end of a gap that held one.
    @Test(
        .serialized,
        arguments: [
            "Europe/Berlin", "America/New_York", "America/Havana", "Asia/Beirut", "Australia/Lord_Howe",
        ])
    func daylightSavingChangesMatchAMinuteByMinuteSimulation(zoneName: String) async throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var generator = ExpressionGenerator(seed: 2025)
        var changes: [Date] = []
        var probe = try date("2025-01-01T00:00:00Z")
        while changes.count < 2, let change = zone.nextDaylightSavingTimeTransition(after: probe) {
            changes.append(change)
            probe = change
        }
        #expect(changes.count == 2)
        for change in changes {
            for _ in 0..<20 {
                await Task.yield()
                let (text, minutes, hours, followsClock) = generator.nextDaily()
                let schedule = try CronSchedule(text, timeZone: zone)
                let first = change.addingTimeInterval(-4 * 3600)
                let last = change.addingTimeInterval(4 * 3600)
                var expected: [Date] = []
                var seen = Set<Int>()
                var previousWall: Int?
                for instant in stride(from: first, to: last, by: 60) {
                    let parts = calendar.dateComponents([.hour, .minute], from: instant)
                    let matches = { (hour: Int?, minute: Int?) in
                        hours.contains(hour ?? -1) && minutes.contains(minute ?? -1)
                    }
                    let wall = Int(instant.timeIntervalSince1970) + zone.secondsFromGMT(for: instant)
                    let skipped = stride(from: (previousWall ?? wall) + 60, to: wall, by: 60).contains {
                        matches($0 / 3600 % 24, $0 / 60 % 60)
                    }
                    if !followsClock && skipped
                        || matches(parts.hour, parts.minute) && (followsClock || !seen.contains(wall))
                    {
                        expected.append(instant)
                    }
                    seen.insert(wall)
                    previousWall = wall
                }
                let fired = schedule.fireTimes(after: first.addingTimeInterval(-1), count: 500).filter {
                    $0 < last
                }
                #expect(fired.map(format) == expected.map(format), "\(text) around \(format(change))")
            }
        }
    }

    // MARK: Helpers

    private func date(_ text: String) throws -> Date {
        try Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: text.contains(".")))
    }

    private func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

/// Generates valid cron expressions together with the values each field allows, for
/// ``CronScheduleTests/generatedSchedulesMatchABruteForceSearch(seed:)``.
private struct ExpressionGenerator {
    /// An expression and what it means, worked out independently of the parser.
    struct Generated {
        var text: String
        var seconds: Set<Int>, minutes: Set<Int>, hours: Set<Int>
        var days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
        var daysAreStar: Bool, weekdaysAreStar: Bool

        /// The first matching second after `date` in GMT, found day by day with Foundation's
        /// calendar; nil if none within thirty years.
        func bruteForceNext(after date: Date) -> Date? {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = .gmt
            let first = (date.timeIntervalSince1970 + 1).rounded(.down)
            let firstDay = (first / 86_400).rounded(.down)
            let times = hours.sorted().flatMap { hour in
                minutes.sorted().flatMap { minute in seconds.sorted().map { hour * 3600 + minute * 60 + $0 } }
            }
            for offset in 0..<(30 * 366) {
                let dayStart = (firstDay + Double(offset)) * 86_400
                let parts = calendar.dateComponents(
                    [.month, .day, .weekday], from: Date(timeIntervalSince1970: dayStart))
                guard let month = parts.month, let day = parts.day, let weekday = parts.weekday else {
                    return nil
                }
                let dayMatches =
                    daysAreStar || weekdaysAreStar
                    ? days.contains(day) && weekdays.contains(weekday - 1)
                    : days.contains(day) || weekdays.contains(weekday - 1)
                guard months.contains(month), dayMatches else { continue }
                if let time = times.first(where: { dayStart + Double($0) >= first }) {
                    return Date(timeIntervalSince1970: dayStart + Double(time))
                }
            }
            return nil
        }
    }

    var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    /// A daily schedule with generated minute and hour fields, the values they allow, and
    /// whether either begins with `*`.
    mutating func nextDaily() -> (text: String, minutes: Set<Int>, hours: Set<Int>, followsClock: Bool) {
        let minute = field(0...59, all: 0...59)
        let hour = field(0...23, all: 0...23)
        return ("\(minute.text) \(hour.text) * * *", minute.values, hour.values, minute.star || hour.star)
    }

    mutating func next() -> Generated {
        let withSeconds = below(3) == 0
        let second: (text: String, values: Set<Int>, star: Bool) =
            withSeconds ? field(0...59, all: 0...59) : ("0", [0], false)
        let minute = field(0...59, all: 0...59)
        let hour = field(0...23, all: 0...23)
        let day = field(1...31, all: 1...31)
        let month = field(
            1...12, all: 1...12,
            names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
        let weekday = field(0...7, all: 0...6, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
        let fields =
            (withSeconds ? [second.text] : []) + [minute.text, hour.text, day.text, month.text, weekday.text]
        return Generated(
            text: fields.joined(separator: " "), seconds: second.values, minutes: minute.values,
            hours: hour.values, days: day.values, months: month.values,
            weekdays: Set(weekday.values.map { $0 % 7 }), daysAreStar: day.star, weekdaysAreStar: weekday.star
        )
    }

    /// One field: `*`, `*/n`, or a list of values, ranges and steps, with the values it allows.
    private mutating func field(_ range: ClosedRange<Int>, all: ClosedRange<Int>, names: [String] = [])
        -> (text: String, values: Set<Int>, star: Bool)
    {
        switch below(6) {
        case 0: return ("*", Set(all), true)
        case 1:
            let step = 1 + below(all.count)
            return ("*/\(step)", Set(stride(from: all.lowerBound, through: all.upperBound, by: step)), true)
        default:
            var texts: [String] = []
            var values = Set<Int>()
            for _ in 0...below(3) {
                let low = range.lowerBound + below(range.count)
                let high = low + below(range.upperBound - low + 1)
                let step = 1 + below(all.count)
                switch below(4) {
                case 0:
                    texts.append(name(low, range: range, names: names))
                    values.insert(low)
                case 1:
                    texts.append(
                        "\(name(low, range: range, names: names))-\(name(high, range: range, names: names))")
                    values.formUnion(low...high)
                case 2:
                    texts.append("\(low)-\(high)/\(step)")
                    values.formUnion(stride(from: low, through: high, by: step))
                default:
                    texts.append("\(low)/\(step)")
                    values.formUnion(stride(from: low, through: max(low, all.upperBound), by: step))
                }
            }
            return (texts.joined(separator: ","), values, false)
        }
    }

    /// A value as a number, or now and then as its name in random case.
    private mutating func name(_ value: Int, range: ClosedRange<Int>, names: [String]) -> String {
        let index = value - range.lowerBound
        // Day-of-week's 7 has no name of its own: SUN is 0, and FRI-SUN would run backwards.
        guard index < names.count, below(2) == 0 else { return "\(value)" }
        let name = names[index % names.count]
        return below(2) == 0 ? name : name.lowercased()
    }

    private mutating func below(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }
}
