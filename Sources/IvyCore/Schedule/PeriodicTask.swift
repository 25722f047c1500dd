// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// A call that a schedule makes: a task, its arguments, and when
/// (``TaskRegistry/schedule(_:cron:timeZone:_:)``).
///
/// Every worker may carry the same periodic tasks; for each, one of them at a time (the leader)
/// sends its calls, one per fire time ("tick"), whose id names the tick, so that a tick is sent
/// once even when the leader changes (PROTOCOL.md §12).
public struct PeriodicTask: Sendable, Hashable {
    public let taskName: String
    public let queue: QueueName
    /// The call's `args`, a JSON array.
    public let arguments: [UInt8]
    public let schedule: CronSchedule
    /// Names the periodic task among every worker's: the task, the schedule (expression and
    /// time zone) and the arguments, hashed. Workers that carry the same one elect one leader
    /// for it.
    public let id: String

    init(taskName: String, queue: QueueName, arguments: [UInt8], schedule: CronSchedule) {
        self.taskName = taskName
        self.queue = queue
        self.arguments = arguments
        self.schedule = schedule
        let identity = [
            taskName, schedule.expression, schedule.timeZone.identifier,
            String(decoding: arguments, as: UTF8.self),
        ]
        .joined(separator: "\n")
        id = OpenSSL.hmacSHA256(key: Array("ivy-periodic-task".utf8), [Array(identity.utf8)[...]])
            .prefix(8).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// The id of the call for the tick at `time`: `<task>@<time, RFC 3339>#<periodic task id>`.
    public func tickID(at time: Date) -> String { "\(taskName)@\(RFC3339.format(time))#\(id)" }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
