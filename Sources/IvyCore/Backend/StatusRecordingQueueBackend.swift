// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend whose broker also keeps some notifiers' call statuses, so that it records them in
/// requests it makes anyway (a capability): a producer's `waiting` goes with the send, a
/// worker's `running` with the reserve that hands it the call, checked there against a cancel.
/// Without it each is a request to the ``TaskStatusStore`` of its own, and a worker waits for
/// its `running` before it starts the call.
///
/// Producers and workers ask ``canRecordStatuses(in:)`` once, when they start, and use the
/// store where the answer is no.
public protocol StatusRecordingQueueBackend<Receipt>: PipelinedQueueBackend {
    /// Whether statuses this backend records are where `store` keeps them: the same server,
    /// keys and format.
    func canRecordStatuses(in store: any TaskStatusStore) -> Bool

    /// Sends like ``PipelinedQueueBackend/send(_:to:completion:)`` and records `status` (the
    /// call's `waiting`, kept `retention`) in the same request. The message carries the call's
    /// id beside its body, for the reserve that hands it out.
    func send(
        _ body: [UInt8], to queue: QueueName, recording status: TaskStatus, keptFor retention: Duration,
        completion: @escaping @Sendable (Result<String, any Error>) -> Void)

    /// Reserves like ``QueueBackend/reserve(from:count:visibility:wait:)``, and records as
    /// running on `worker` (kept `retention`) each call whose message carries its id, in one
    /// step with reading whether the call was cancelled or has ended: that reservation's
    /// ``Reservation/recordedStart`` says what. The attempt recorded is the delivery count, as
    /// for a message whose own attempt is 1. Calls whose messages carry no id (sent without
    /// recording, or to run later) are left to the worker to record.
    func reserve(
        from queue: QueueName, count: Int, visibility: Duration, wait: Duration,
        recordingStartsOn worker: String, keptFor retention: Duration
    ) async throws -> [Reservation<Receipt>]
}
