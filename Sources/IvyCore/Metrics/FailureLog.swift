// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
internal import Synchronization

/// A worker's latest failures (retries, calls failed for good, messages dead-lettered), the
/// newest first, for its announcements (``WorkerPresence/recentFailures``) and dashboards.
public final class FailureLog: Sendable {
    /// How many are kept.
    public let capacity: Int
    private let failures = Mutex<[WorkerPresence.Failure]>([])

    public init(capacity: Int = 20) {
        self.capacity = max(1, capacity)
    }

    /// The failures kept, the newest first.
    public func latest() -> [WorkerPresence.Failure] { failures.withLock { $0.reversed() } }

    /// Keeps `event` if it is a failure, at `time`.
    public func record(_ event: IvyEvent, at time: Date = Date()) {
        switch event.kind {
        case .retried, .failed, .deadLettered: break
        default: return
        }
        // Names and errors come from messages, which anyone who can send writes: bounded, so
        // that an announcement stays small whatever they hold.
        let failure = WorkerPresence.Failure(
            kind: event.kind.description, at: time, task: (event.task?.taskName ?? "").cut(toUTF8Count: 256),
            taskID: (event.task?.taskID ?? event.messageID ?? "").cut(toUTF8Count: 256),
            queue: event.queue?.rawValue ?? "", attempt: event.task?.attempt ?? 0,
            error: (event.error ?? "").cut(toUTF8Count: 1024))
        failures.withLock { failures in
            if failures.count == capacity { failures.removeFirst() }
            failures.append(failure)
        }
    }
}
