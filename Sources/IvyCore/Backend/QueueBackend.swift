// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A durable queue broker: the contract every backend keeps (PROTOCOL.md, "Backend contract").
///
/// Message bodies are opaque bytes here; the codec above turns them into task messages.
/// Guarantees:
/// - ``send(_:to:)`` returns only after the broker durably accepted the message.
/// - ``reserve(from:count:visibility:wait:)`` hands out messages invisible to other consumers
///   until acknowledged, released, dead-lettered or until the visibility timeout runs out;
///   expired reservations come back by themselves and their delivery count grows.
/// - Nothing is deleted without either ``ack(_:)`` after a successful run or a dead-letter copy.
public protocol QueueBackend: Sendable {
    /// The broker's handle on one reservation.
    associatedtype Receipt: Sendable

    /// The backend's URL with credentials redacted, for logs and errors.
    var endpoint: String { get }

    /// The largest message body the broker accepts, in bytes.
    var maximumMessageSize: Int { get }

    /// Enqueues one message and returns the broker's message id once it is durably accepted.
    ///
    /// - Throws: ``IvyError/Code/messageTooLarge`` before contacting the broker when the body
    ///   exceeds ``maximumMessageSize``.
    func send(_ body: [UInt8], to queue: String) async throws -> String

    /// Enqueues one message like ``send(_:to:)``, without suspending the caller: `completion`
    /// gets the message id or the failure, once, on whatever thread the backend finishes on, and
    /// must not block.
    ///
    /// For callers with something else to await: a producer making a call waits for the result,
    /// so a send that fails reaches it through the result slot, and a send that succeeds costs
    /// it no task switch. The default runs ``send(_:to:)`` in a new task; backends that finish
    /// sends on a thread of their own (Redis) or at once (memory) call `completion` directly.
    func send(
        _ body: [UInt8], to queue: String, completion: @escaping @Sendable (Result<String, any Error>) -> Void
    )

    /// Enqueues messages in as few round trips as the broker allows; returns their ids in order.
    func send(batch bodies: [[UInt8]], to queue: String) async throws -> [String]

    /// Reserves up to `count` messages, waiting up to `wait` for the first to arrive.
    ///
    /// Returns an empty array when nothing arrived in time or the calling task was cancelled;
    /// never polls in a busy loop. Messages the broker already handed out when the call is
    /// cancelled are returned, not dropped.
    func reserve(from queue: String, count: Int, visibility: Duration, wait: Duration) async throws
        -> [Reservation<Receipt>]

    /// Deletes a reserved message after a successful run.
    ///
    /// - Throws: ``IvyError/Code/reservationLost`` when the reservation expired first.
    func ack(_ reservation: Reservation<Receipt>) async throws

    /// Acknowledges a successful run, then publishes its result on `channel` through `notifier`,
    /// in that order: a caller never hears of a result while its message is still queued.
    ///
    /// The result is published even when the acknowledgement fails, since the task did run.
    /// The default awaits ``ack(_:)`` and then publishes; a backend whose broker also carries
    /// `notifier`'s messages does both in one request (Redis), saving the caller a round trip.
    func ack(
        _ reservation: Reservation<Receipt>, publishing payload: [UInt8], to channel: String,
        through notifier: any Notifier
    ) async -> AckAndPublishOutcome

    /// Acknowledges and publishes like ``ack(_:publishing:to:through:)``, without suspending:
    /// `completion` gets the outcome once, on whatever thread the backend finishes on, and must
    /// not block. The worker settles a run's message this way, so the task that ran it ends
    /// at once. The default runs the suspending form in a new task.
    func ack(
        _ reservation: Reservation<Receipt>, publishing payload: [UInt8], to channel: String,
        through notifier: any Notifier,
        completion: @escaping @Sendable (AckAndPublishOutcome) -> Void)

    /// Keeps a reservation for another `visibility` from now (a heartbeat for long tasks).
    ///
    /// - Returns: The reservation to use from now on: brokers such as IronMQ hand out a new
    ///   receipt on every extension and refuse the old one.
    func extend(_ reservation: Reservation<Receipt>, visibility: Duration) async throws -> Reservation<
        Receipt
    >

    /// Gives a reserved message back to the queue, visible again after `delay` (a backend may
    /// round the delay up to its granularity).
    ///
    /// The message keeps its id and its delivery count keeps growing, so a task's attempts are
    /// counted across releases.
    func release(_ reservation: Reservation<Receipt>, delay: Duration) async throws

    /// Moves a reserved message to the queue's dead letter, with the reason attached.
    func deadLetter(_ reservation: Reservation<Receipt>, reason: String) async throws

    /// Releases connections and threads; pending calls fail with ``IvyError/Code/closed``.
    func close() async
}

extension QueueBackend {
    public func ack(
        _ reservation: Reservation<Receipt>, publishing payload: [UInt8], to channel: String,
        through notifier: any Notifier,
        completion: @escaping @Sendable (AckAndPublishOutcome) -> Void
    ) {
        Task { completion(await ack(reservation, publishing: payload, to: channel, through: notifier)) }
    }

    public func send(
        _ body: [UInt8], to queue: String, completion: @escaping @Sendable (Result<String, any Error>) -> Void
    ) {
        Task {
            do {
                completion(.success(try await send(body, to: queue)))
            } catch {
                completion(.failure(error))
            }
        }
    }

    public func ack(
        _ reservation: Reservation<Receipt>, publishing payload: [UInt8], to channel: String,
        through notifier: any Notifier
    ) async -> AckAndPublishOutcome {
        await ackThenPublish(reservation, payload, to: channel, through: notifier)
    }

    /// ``ack(_:publishing:to:through:)`` in two requests: ``ack(_:)``, then the publication.
    public func ackThenPublish(
        _ reservation: Reservation<Receipt>, _ payload: [UInt8], to channel: String,
        through notifier: any Notifier
    ) async -> AckAndPublishOutcome {
        var outcome = AckAndPublishOutcome()
        do { try await ack(reservation) } catch { outcome.ackError = error }
        do { try await notifier.publish(payload, to: channel) } catch { outcome.publishError = error }
        return outcome
    }

    /// One send per message: slower than a broker's batch, but right.
    public func send(batch bodies: [[UInt8]], to queue: String) async throws -> [String] {
        var ids: [String] = []
        ids.reserveCapacity(bodies.count)
        for body in bodies { ids.append(try await send(body, to: queue)) }
        return ids
    }

    /// Throws ``IvyError/Code/messageTooLarge`` when `body` is over the limit.
    public func checkSize(_ body: [UInt8], queue: String) throws(IvyError) {
        guard body.count <= maximumMessageSize else {
            throw IvyError(
                .messageTooLarge, endpoint: endpoint,
                detail: "\(body.count) bytes for queue \(queue); the limit is \(maximumMessageSize)")
        }
    }
}

/// A backend that can show and manage what it holds: sizes, a peek, the dead letter.
public protocol InspectableQueueBackend: QueueBackend {
    /// Counts of a queue's messages by state.
    func size(of queue: String) async throws -> QueueSize
    /// The next `count` ready messages, without reserving them.
    func peek(_ queue: String, count: Int) async throws -> [QueuedMessage]
    /// The oldest `count` dead-lettered messages of a queue.
    func deadLetters(of queue: String, count: Int) async throws -> [DeadLetter]
    /// Moves up to `count` dead letters back to the queue, oldest first; returns how many moved.
    func requeueDeadLetters(of queue: String, count: Int) async throws -> Int
    /// Deletes every ready and delayed message of a queue; returns how many went.
    func purge(_ queue: String) async throws -> Int
    /// Deletes a queue's dead letters; returns how many went.
    func purgeDeadLetters(of queue: String) async throws -> Int
}
