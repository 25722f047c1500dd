// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A durable queue broker: the contract every backend keeps (PROTOCOL.md §5).
///
/// This is all a backend author must write; the rest are opt-in capabilities that producers and
/// workers detect: ``PipelinedQueueBackend`` (sends that do not suspend),
/// ``ResultPublishingQueueBackend`` (acknowledge and publish a result in one request),
/// ``InspectableQueueBackend`` (sizes, peek, dead letters), ``PausableQueueBackend`` (queues an
/// operator pauses for every worker), ``DelayedSendQueueBackend`` (messages held back for calls
/// that run later), ``ResendingQueueBackend`` (retries sent again as new
/// messages) and ``StatusRecordingQueueBackend`` (call statuses recorded in the sends and
/// reserves). The article <doc:WritingABackend> walks through the memory backend as an example.
///
/// Message bodies are opaque bytes here; the codec above turns them into task messages.
/// Guarantees:
/// - ``send(_:to:)`` returns only after the broker durably accepted the message.
/// - ``reserve(from:count:visibility:wait:)`` hands out messages invisible to other consumers
///   until acknowledged, released, dead-lettered or until the visibility timeout runs out;
///   expired reservations come back by themselves and their delivery count grows.
/// - Nothing is deleted without either ``ack(_:)`` after a successful run or a dead-letter copy
///   (or a purge an operator asks for, ``InspectableQueueBackend/purge(_:)``).
public protocol QueueBackend<Receipt>: Sendable {
    /// The broker's handle on one reservation.
    associatedtype Receipt: Sendable

    /// The backend's URL with credentials redacted, for logs and errors.
    var endpoint: String { get }

    /// The largest message body the broker accepts, in bytes.
    var maximumMessageSize: Int { get }

    /// Enqueues one message and returns the broker's message id once it is durably accepted.
    ///
    /// - Throws: ``IvyError/Code/messageTooLarge`` before contacting the broker when the body
    ///   exceeds ``maximumMessageSize`` (see ``checkSize(_:queue:)``).
    func send(_ body: [UInt8], to queue: QueueName) async throws -> String

    /// Enqueues messages in as few round trips as the broker allows; returns their ids in order.
    ///
    /// The default sends them one at a time.
    func send(batch bodies: [[UInt8]], to queue: QueueName) async throws -> [String]

    /// Reserves up to `count` messages, waiting up to `wait` for the first to arrive.
    ///
    /// Returns an empty array when nothing arrived in time or the calling task was cancelled;
    /// never polls in a busy loop. Messages the broker already handed out when the call is
    /// cancelled are returned, not dropped.
    func reserve(from queue: QueueName, count: Int, visibility: Duration, wait: Duration) async throws
        -> [Reservation<Receipt>]

    /// Deletes a reserved message after a successful run.
    ///
    /// - Throws: ``IvyError/Code/reservationLost`` when the reservation expired first.
    func ack(_ reservation: Reservation<Receipt>) async throws

    /// Keeps a reservation for another `visibility` from now (a heartbeat for long tasks).
    ///
    /// - Returns: The reservation to use from now on: brokers such as IronMQ hand out a new
    ///   receipt on every extension and refuse the old one.
    func extend(_ reservation: Reservation<Receipt>, visibility: Duration) async throws
        -> Reservation<Receipt>

    /// Gives a reserved message back to the queue, visible again after `delay` (a backend may
    /// round the delay up to its granularity).
    ///
    /// The message keeps its id and its delivery count keeps growing, so a task's attempts are
    /// counted across releases.
    func release(_ reservation: Reservation<Receipt>, delay: Duration) async throws

    /// Moves a reserved message to the queue's dead letter, with the reason attached.
    func deadLetter(_ reservation: Reservation<Receipt>, reason: String) async throws

    /// Releases connections and threads. Sends and reserves started afterwards fail with
    /// ``IvyError/Code/closed``; a reserve waiting when it closes returns what it has.
    func close() async
}

extension QueueBackend {
    /// One send per message: slower than a broker's batch, but right.
    public func send(batch bodies: [[UInt8]], to queue: QueueName) async throws -> [String] {
        var ids: [String] = []
        ids.reserveCapacity(bodies.count)
        for body in bodies { ids.append(try await send(body, to: queue)) }
        return ids
    }

    /// Throws ``IvyError/Code/messageTooLarge`` when `body` is over the limit.
    public func checkSize(_ body: [UInt8], queue: QueueName) throws(IvyError) {
        guard body.count <= maximumMessageSize else {
            throw IvyError(
                .messageTooLarge, endpoint: endpoint,
                detail: "\(body.count) bytes for queue \(queue); the limit is \(maximumMessageSize)")
        }
    }
}
