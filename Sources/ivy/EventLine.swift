// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyCore

/// A worker event as `ivy worker --events` prints it: one readable line, or one JSON object.
struct EventLine: Encodable {
    var time: String
    var event: String
    var task: String?
    var id: String?
    var attempt: Int?
    var queue: String?
    var messageID: String?
    var durationMilliseconds: Double?
    var delayMilliseconds: Double?
    var error: String?

    enum CodingKeys: String, CodingKey {
        case time, event, task, id, attempt, queue, error
        case messageID = "message_id"
        case durationMilliseconds = "duration_ms"
        case delayMilliseconds = "retry_in_ms"
    }

    init(_ event: IvyEvent, at time: Date = Date()) {
        self.time = RFC3339.format(time)
        self.event = "\(event.kind)"
        task = event.task?.taskName
        id = event.task?.taskID
        attempt = event.task?.attempt
        queue = event.queue?.rawValue
        messageID = event.messageID
        durationMilliseconds = event.duration.map(Self.milliseconds)
        delayMilliseconds = event.delay.map(Self.milliseconds)
        error = event.error
    }

    /// `TIME EVENT TASK id=ID attempt=N queue=Q [N ms] [retry in N ms] [message=ID] [: ERROR]`.
    var text: String {
        var line = "\(time) \(event)"
        if let task { line += " \(task)" }
        if let id { line += " id=\(id)" }
        if let attempt { line += " attempt=\(attempt)" }
        if let queue { line += " queue=\(queue)" }
        if let messageID { line += " message=\(messageID)" }
        if let durationMilliseconds { line += " \(Self.text(durationMilliseconds)) ms" }
        if let delayMilliseconds { line += " retry in \(Self.text(delayMilliseconds)) ms" }
        if let error { line += ": \(error)" }
        return line
    }

    private static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return (Double(seconds) * 1000 + Double(attoseconds) / 1e15 * 1000).rounded() / 1000
    }

    private static func text(_ milliseconds: Double) -> String {
        String(format: milliseconds < 10 ? "%.3f" : "%.1f", milliseconds)
    }
}
