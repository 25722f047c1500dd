// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A call's start, as a ``StatusRecordingQueueBackend`` recorded it with the reserve.
public struct RecordedStart: Sendable, Hashable {
    /// The call's id, as its message carried it.
    public var callID: String
    /// The attempt recorded as running.
    public var attempt: Int
    /// What the store holds for the call afterwards: ``TaskStatus/State-swift.enum/running``,
    /// ``TaskStatus/State-swift.enum/cancelled`` when a cancel came first (or came while an
    /// earlier attempt ran), or the final state the call already had.
    public var state: TaskStatus.State

    public init(callID: String, attempt: Int, state: TaskStatus.State) {
        self.callID = callID
        self.attempt = attempt
        self.state = state
    }
}
