// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A notifier that also keeps each call's ``TaskStatus`` for a while (a capability).
///
/// Producers record the calls they send, workers each attempt and outcome; ``IvyClient``'s
/// `status(of:)` and `cancel(_:)` and `ivy status`/`ivy cancel` read and change them. A status
/// only moves forward (``TaskStatus/supersedes(_:)``), so writes that cross on the way (a
/// producer's `waiting` reaching the store after the worker's `running`) leave the later state.
/// Statuses are advisory: a worker that cannot record one still runs the call.
public protocol TaskStatusStore: Notifier {
    /// How long a status is kept after its last change; nil when this store keeps none (status
    /// tracking is off, and producers and workers record nothing).
    var statusRetention: Duration? { get }

    /// Records `status` unless the store holds one that supersedes it, and reports the state the
    /// store holds afterwards: a worker about to start a call that was cancelled gets
    /// ``TaskStatus/State-swift.enum/cancelled`` back and does not run it. A worker that
    /// records a retry, or another attempt, of a call whose cancel was asked while an attempt
    /// ran gets ``TaskStatus/State-swift.enum/cancelled`` too, and records the cancellation
    /// instead of running it. Other states may be reported as written, unread: nothing acts on
    /// them.
    ///
    /// Does not suspend: `completion` gets the outcome once, on whatever thread the store
    /// finishes on, and must not block.
    func record(
        _ status: TaskStatus, completion: @escaping @Sendable (Result<TaskStatus.State, any Error>) -> Void)

    /// Records `status` (a final one, with the result's notification), then publishes
    /// `payload` on `channel`: a caller that hears of its result and asks for its status finds
    /// it final.
    func publish(_ payload: [UInt8], to channel: ChannelName, recording status: TaskStatus) async throws

    /// The status of call `id`; ``TaskStatus/State-swift.enum/unknown`` when the store has none.
    func status(of id: String) async throws -> TaskStatus

    /// Cancels call `id` if it has not started (scheduled, waiting or retrying): records it as
    /// cancelled with `reason`. If it is running, marks that a cancel was asked. Returns the
    /// status afterwards, so the caller can tell which: cancelled, running with
    /// ``TaskStatus/cancelRequested``, already final, or unknown.
    func cancel(_ id: String, reason: String) async throws -> TaskStatus
}

extension TaskStatusStore {
    /// Records `status` and returns the state the store holds afterwards.
    public func record(_ status: TaskStatus) async throws -> TaskStatus.State {
        try await withCheckedThrowingContinuation { continuation in
            record(status) { continuation.resume(with: $0) }
        }
    }
}

extension Notifier {
    /// The status store of this notifier, when it has one and keeps statuses.
    package var activeStatusStore: (any TaskStatusStore)? {
        guard let store = self as? any TaskStatusStore, store.statusRetention != nil else { return nil }
        return store
    }
}
