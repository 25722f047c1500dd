// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// When a periodic task fires: a cron expression read in a time zone.
///
/// ```swift
/// let weekdays = try CronSchedule("0 9 * * MON-FRI", timeZone: TimeZone(identifier: "Europe/Berlin")!)
/// let next = weekdays.next(after: .now)           // 09:00 Berlin time on the next weekday
/// let everyQuarterMinute = try CronSchedule("*/15 * * * * *")   // six fields: seconds first
/// ```
///
/// ## Syntax
///
/// Five fields, `minute hour day-of-month month day-of-week`, fire at second 0; six fields put
/// a `second` field first. Fields are separated by white space.
///
/// | Field        | Values | Names (any case) |
/// |--------------|--------|------------------|
/// | second       | 0–59   |                  |
/// | minute       | 0–59   |                  |
/// | hour         | 0–23   |                  |
/// | day-of-month | 1–31   |                  |
/// | month        | 1–12   | `JAN`–`DEC`      |
/// | day-of-week  | 0–7, 0 and 7 both Sunday | `SUN`–`SAT` |
///
/// Each field is a comma-separated list of items; an item is `*` (every value), a value, a
/// range `a-b`, or one of those followed by a step: `*/n` (every nth value from the field's
/// first), `a-b/n`, and `a/n` (from `a` to the field's end). Names may stand wherever a value
/// does: `MON-FRI`, `JAN,JUL`. A range must not run backwards (`FRI-MON` is refused), and a
/// step runs from 1 to the number of values in the field. In day-of-week, `*` means 0–6, so
/// `*/2` is Sunday, Tuesday, Thursday, Saturday.
///
/// A macro may stand in for the whole expression: `@yearly` and `@annually` (`0 0 1 1 *`),
/// `@monthly` (`0 0 1 * *`), `@weekly` (`0 0 * * 0`), `@daily` and `@midnight` (`0 0 * * *`),
/// `@hourly` (`0 * * * *`). `@every <duration>` is not supported: it counts from when a
/// scheduler started, not from the calendar, so it has no place in a schedule computed from
/// dates alone; write a step such as `*/5` instead. Quartz's `?`, `L`, `W` and `#` are not
/// supported either.
///
/// ## Day of month and day of week
///
/// As in Vixie cron (and every cron derived from it), when both day fields are restricted a
/// day matches if **either** does: `0 0 1,15 * MON` fires on the 1st, on the 15th, and on
/// every Monday. When one of them begins with `*` only the other restricts days. Like Vixie
/// cron, "begins with `*`" includes steps: `0 0 */2 * MON` fires on odd-numbered days that
/// are Mondays, not on odd days or Mondays.
///
/// ## Daylight saving time
///
/// Fields are matched against the wall clock of ``timeZone``, and the policy at offset
/// changes is that of ISC (Vixie) cron as Debian and cronie ship it, decided by the same test:
///
/// - **Fixed-time schedules**, whose minute and hour fields do not begin with `*` (such as
///   `30 2 * * *` or `@daily`), never lose a day and never run twice. A wall-clock time the
///   clock skips (02:30 on the spring-forward day in Europe/Berlin) fires at the first instant
///   after the gap (03:00 CEST), once however many of the schedule's times the gap held; a
///   wall-clock time the clock shows twice (01:30 on the fall-back day in America/New_York)
///   fires at its first occurrence only.
/// - **Clock-following schedules**, whose minute or hour field begins with `*` (such as
///   `*/5 * * * *`, `30 * * * *` or `@hourly`), fire whenever the clock shows a matching time:
///   skipped times do not fire and repeated times fire twice. So they keep their real-time
///   rhythm: `*/30 * * * *` fires every 30 minutes of real time, and `@hourly` every hour,
///   through both changes of a one-hour daylight saving shift.
///
/// The second field of a six-field expression plays no part in deciding which kind a schedule is.
/// Cron applies its rule to clock changes of under three hours; this type applies it to every
/// offset change in the zone's data, which is the same thing for daylight saving time.
///
/// ## Equality
///
/// Two schedules are equal when their expressions mean the same fields in the same time zone:
/// `@daily` equals `0 0 * * *`. ``expression`` keeps the text as written.
public struct CronSchedule: Sendable, Hashable, CustomStringConvertible {
    /// The expression as parsed, its fields separated by single spaces.
    public let expression: String
    /// The time zone whose wall clock the fields are read on.
    public let timeZone: TimeZone
    /// What the expression means.
    let fields: Fields
    /// Whether any day matches at all, worked out once: `0 0 30 2 *` never fires.
    let canFire: Bool

    /// Parses a cron expression of five fields, six fields (seconds first) or a macro.
    ///
    /// - Parameters:
    ///   - expression: Such as `0 9 * * MON-FRI`, `*/15 * * * * *` or `@hourly`.
    ///   - timeZone: The zone whose wall clock the fields are read on; GMT by default.
    /// - Throws: ``IvyError/Code/invalidConfiguration``, with a detail naming the field and the
    ///   token at fault (quoted, and cut short if long), for a wrong number of fields, a value
    ///   out of range, a reversed range, a step of zero or out of range, an empty list item, an
    ///   unknown name or macro, or anything else that is not cron syntax.
    public init(_ expression: String, timeZone: TimeZone = .gmt) throws(IvyError) {
        (self.expression, fields) = try Self.parse(expression)
        canFire = fields.canMatch
        self.timeZone = timeZone
    }

    /// The first fire time strictly after `date`.
    ///
    /// Fire times are whole seconds. The search steps through months, days, hours, minutes
    /// and seconds on the zone's wall clock (never second by second), and follows the
    /// daylight saving policy described above.
    ///
    /// - Returns: The fire time, or nil when the schedule never fires again: for a date that
    ///   does not exist (`0 0 30 2 *`, at once), when nothing fires within 400 years (a full
    ///   Gregorian cycle, after which dates and weekdays repeat), or when `date` lies more than
    ///   about 30,000 years from 1970.
    public func next(after date: Date) -> Date? {
        nextSecond(after: date.timeIntervalSince1970).map { Date(timeIntervalSince1970: Double($0)) }
    }

    /// The next `count` fire times after `date`, earliest first; fewer if the schedule ends.
    ///
    /// - Parameters:
    ///   - date: The fire times are strictly after it.
    ///   - count: How many to give; not negative.
    public func fireTimes(after date: Date, count: Int) -> [Date] {
        precondition(count >= 0, "CronSchedule.fireTimes count must not be negative")
        var times: [Date] = []
        var last = date
        while times.count < count, let time = next(after: last) {
            times.append(time)
            last = time
        }
        return times
    }

    /// The expression and the time zone, such as `0 9 * * MON-FRI (Europe/Berlin)`.
    public var description: String { "\(expression) (\(timeZone.identifier))" }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.fields == rhs.fields && lhs.timeZone == rhs.timeZone
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(fields)
        hasher.combine(timeZone)
    }
}
