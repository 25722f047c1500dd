// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyCore

/// A worker event as `ivy worker --events` prints it: one readable line, or one JSON object.
struct EventLine {
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

    /// The `--json` form: `time, event, task, id, attempt, queue, message_id, duration_ms,
    /// retry_in_ms, error`, each where it applies.
    var json: JSONObjectOutput {
        var object = JSONObjectOutput()
        object.add("time", time)
        object.add("event", event)
        object.add("task", task)
        object.add("id", id)
        object.add("attempt", attempt)
        object.add("queue", queue)
        object.add("message_id", messageID)
        object.add("duration_ms", milliseconds: durationMilliseconds)
        object.add("retry_in_ms", milliseconds: delayMilliseconds)
        object.add("error", error)
        return object
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
        if let error { line += ": \(Console.printable(error))" }
        return line
    }

    /// Milliseconds, to the microsecond.
    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        let microseconds = Double(seconds) * 1e6 + Double(attoseconds) / 1e12
        return microseconds.rounded() / 1000
    }

    private static func text(_ milliseconds: Double) -> String {
        String(format: milliseconds < 10 ? "%.3f" : "%.1f", milliseconds)
    }
}
