// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

// The search works on two time lines, both in whole seconds since 1970-01-01 00:00:00:
// instants (UTC) and wall-clock times (the reading of a clock in the schedule's time zone,
// as a date and time with no zone). Between two offset changes, instant + offset = wall
// time; the cron fields are matched on wall times with civil-calendar arithmetic, which has
// no gaps and no repeats, and each match is mapped back to an instant.

extension CronSchedule {
    /// How far a search looks: one full Gregorian cycle, after which dates and weekdays
    /// repeat, so a schedule that finds nothing in it never fires (and `canFire` has already
    /// turned away those).
    static let searchHorizon = 146_097 * 86_400

    /// The instants a date may be: within about ±31,000 years of 1970, where whole seconds,
    /// calendar arithmetic and the horizon all fit in an `Int` with room to spare.
    private static let supportedSeconds = -1e12...1e12

    /// The first fire time strictly after `instant`, in seconds; the body of `next(after:)`.
    func nextSecond(after instant: Double) -> Int? {
        guard canFire, Self.supportedSeconds.contains(instant) else { return nil }
        var start = Int(instant.rounded(.down)) + 1
        let horizon = start + Self.searchHorizon
        // The change that began the stretch holding `start`, if recent: `start` may be in the
        // second pass of a repeated hour, or a gap may have closed exactly at `start`.
        var previous = lastOffsetChange(atOrBefore: start)
        while start < horizon {
            let offset = offsetFromGMT(at: start)
            if let change = previous, change.at == start, offset > change.offsetBefore, !fields.followsClock,
                firstMatch(from: change.at + change.offsetBefore, before: change.at + offset) != nil
            {
                // Wall times the clock skipped: a fixed-time schedule catches up at once.
                return start
            }
            var from = start + offset
            if let change = previous, change.offsetBefore > offset, !fields.followsClock {
                // The clock went back: wall times before the change's old reading were passed
                // once already, and a fixed-time schedule does not repeat them.
                from = max(from, change.at + change.offsetBefore)
            }
            let end = min(offsetChange(after: start) ?? horizon, horizon)
            if let wall = firstMatch(from: from, before: end + offset) {
                return wall - offset
            }
            previous = (end, offset)
            start = end
        }
        return nil
    }

    /// The zone's offset from GMT at an instant, in seconds.
    private func offsetFromGMT(at instant: Int) -> Int {
        timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant)))
    }

    /// The first instant after `instant` at which the zone's offset may change, or nil.
    ///
    /// Foundation reports every transition of the zone's data, standard-offset changes such as
    /// Moscow's in 2014 included; one that leaves the offset alone does no harm.
    private func offsetChange(after instant: Int) -> Int? {
        // Asks again a second later should the answer not lie after `instant` (a change at
        // `instant` itself), so the search always moves on.
        for probe in [instant, instant + 1] {
            guard
                let date = timeZone.nextDaylightSavingTimeTransition(
                    after: Date(timeIntervalSince1970: Double(probe)))
            else { return nil }
            let seconds = date.timeIntervalSince1970.rounded(.up)
            guard Self.supportedSeconds.contains(seconds) else { return nil }
            if Int(seconds) > instant { return Int(seconds) }
        }
        return nil
    }

    /// The latest offset change at or before `instant` within two days, with the offset
    /// before it; older changes no longer affect which wall times are repeats.
    private func lastOffsetChange(atOrBefore instant: Int) -> (at: Int, offsetBefore: Int)? {
        var last: Int?
        var probe = instant - 2 * 86_400
        while let change = offsetChange(after: probe), change <= instant {
            last = change
            probe = change
        }
        return last.map { ($0, offsetFromGMT(at: $0 - 1)) }
    }

    /// The first wall-clock time at or after `start` and before `limit` that the fields allow.
    ///
    /// Steps field by field, largest first: a month the schedule lacks is skipped whole, then
    /// a day, an hour, a minute; a value past a field's end carries into the next larger one.
    func firstMatch(from start: Int, before limit: Int) -> Int? {
        var day = start.floorDivided(by: 86_400)
        var (year, month, dayOfMonth) = Civil.date(fromDay: day)
        let secondOfDay = start - day * 86_400
        var (hour, minute, second) = (secondOfDay / 3600, secondOfDay / 60 % 60, secondOfDay % 60)
        while true {
            day = Civil.day(year: year, month: month, day: dayOfMonth)
            guard day * 86_400 + hour * 3600 + minute * 60 + second < limit else { return nil }
            guard fields.months.contains(month) else {
                if let next = fields.months.first(atOrAfter: month + 1) {
                    month = next
                } else {
                    year += 1
                    month = fields.months.first(atOrAfter: 1) ?? 1
                }
                (dayOfMonth, hour, minute, second) = (1, 0, 0, 0)
                continue
            }
            guard dayOfMonth <= Civil.daysIn(month: month, year: year) else {
                (year, month) = month == 12 ? (year + 1, 1) : (year, month + 1)
                (dayOfMonth, hour, minute, second) = (1, 0, 0, 0)
                continue
            }
            guard fields.allowsDay(dayOfMonth, weekday: Civil.weekday(ofDay: day)),
                let nextHour = fields.hours.first(atOrAfter: hour)
            else {
                (dayOfMonth, hour, minute, second) = (dayOfMonth + 1, 0, 0, 0)
                continue
            }
            if nextHour != hour { (hour, minute, second) = (nextHour, 0, 0) }
            guard let nextMinute = fields.minutes.first(atOrAfter: minute) else {
                (hour, minute, second) = (hour + 1, 0, 0)
                continue
            }
            if nextMinute != minute { (minute, second) = (nextMinute, 0) }
            guard let nextSecond = fields.seconds.first(atOrAfter: second) else {
                (minute, second) = (minute + 1, 0)
                continue
            }
            let wall = day * 86_400 + hour * 3600 + minute * 60 + nextSecond
            return wall < limit ? wall : nil
        }
    }
}

/// Proleptic Gregorian calendar arithmetic on day numbers (days since 1970-01-01), after
/// Howard Hinnant's `days_from_civil` and `civil_from_days`: exact for any year, no tables.
private enum Civil {
    /// The day number of a date.
    static func day(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDivided(by: 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date of a day number.
    static func date(fromDay number: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = number + 719_468
        let era = shifted.floorDivided(by: 146_097)
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Days in a month of a year.
    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// The weekday of a day number, Sunday 0 (1970-01-01 was a Thursday).
    static func weekday(ofDay number: Int) -> Int {
        (number + 4).floorModulo(7)
    }
}

extension Int {
    /// Division rounding toward negative infinity, for days and eras before 1970.
    fileprivate func floorDivided(by divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    /// The remainder that goes with `floorDivided(by:)`, never negative for a positive divisor.
    fileprivate func floorModulo(_ divisor: Int) -> Int {
        self - floorDivided(by: divisor) * divisor
    }
}
