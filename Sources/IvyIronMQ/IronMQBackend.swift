// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore
internal import Synchronization

/// A queue backend on an IronMQ v3 server (`ironmq://TOKEN@host/PROJECT_ID`, or
/// `ironmq+http://…` for the local server).
///
/// Every operation is one HTTP request on a keep-alive connection (libcurl, each connection on a
/// thread of its own): posts and deletes in batches of up to 100, reservations long-polled with
/// `wait` (up to 30 s a request), touch as the heartbeat of long tasks (it hands out a new
/// reservation id). A touch also raises the message's `reserved_count`, so retries are sent again
/// as new messages with their attempt raised and a delay (``ResendingQueueBackend``);
/// release puts back what a stopping worker hands back. IronMQ counts in whole seconds: a
/// visibility is rounded up to a second and to the server's shortest reservation (30 s on
/// Iron.io), a delay up to a second and down to its longest (7 days). Dead letters go, as a JSON
/// record with the reason, to the queue the queue's own `dead_letter` setting names, else to
/// `<queue>--dead`; the setting is read once per queue. Queues are created by IronMQ on the
/// first post, and by a reserve that finds none. A queue is paused (``PausableQueueBackend``)
/// while a queue named `<queue>--paused` exists.
public final class IronMQBackend: InspectableQueueBackend, ResendingQueueBackend, PausableQueueBackend,
    DelayedSendQueueBackend
{
    public struct Receipt: Sendable, Hashable {
        /// The reservation id IronMQ handed out; a touch replaces it.
        fileprivate let reservationID: String
    }

    public let endpoint: String
    public let maximumMessageSize: Int

    let client: IronMQClient
    let minimumReservation: Duration
    let logger: any IvyLogger
    /// How many dead letters ``requeueDeadLetter(of:messageID:)`` and
    /// ``deleteDeadLetter(of:messageID:)`` look at, at most.
    let deadLetterScanLimit: Int
    private let senders = CoalescerTable<IronMQClient.PostedMessage, String>(maximumBatch: 100)
    private let acknowledgers = CoalescerTable<Acknowledgement, Bool>(maximumBatch: 100)
    /// Each queue's dead-letter queue, once read from its settings.
    let deadQueues = Mutex<[QueueName: DeadQueue]>([:])

    /// IronMQ's longest reservation and delay, and the most messages one request moves.
    static let longestReservation = 86_400
    static let longestDelay = 604_800
    static let maximumBatch = 100
    static let longestWait = 30

    /// Connects to the server the URL names, and checks the token and project with one request.
    ///
    /// - Parameters:
    ///   - maximumMessageSize: The largest body accepted: 64 KiB by default, node ivy's limit.
    ///   - logger: Where the backend says what it cannot report otherwise (a search for a dead
    ///     letter that gave up).
    /// - Throws: ``IvyError/Code/invalidURL`` or ``IvyError/Code/invalidConfiguration`` for the
    ///   URL and settings; ``IvyError/Code/connectionFailed`` for a server out of reach or a wrong
    ///   token (HTTP 401).
    public static func connect(
        url: String, maximumMessageSize: Int = 64 << 10, logger: any IvyLogger = StderrLogger()
    ) async throws -> IronMQBackend {
        try await connect(
            configuration: IronMQConfiguration(url: url), maximumMessageSize: maximumMessageSize,
            logger: logger)
    }

    /// Connects with a configuration made by hand; see ``connect(url:maximumMessageSize:logger:)``.
    public static func connect(
        configuration: IronMQConfiguration, maximumMessageSize: Int = 64 << 10,
        logger: any IvyLogger = StderrLogger()
    ) async throws -> IronMQBackend {
        try await connect(
            configuration: configuration, maximumMessageSize: maximumMessageSize, logger: logger,
            deadLetterScanLimit: 500)
    }

    /// - Parameter deadLetterScanLimit: How many dead letters
    ///   ``requeueDeadLetter(of:messageID:)`` and ``deleteDeadLetter(of:messageID:)`` look at,
    ///   at most; smaller in tests.
    static func connect(
        configuration: IronMQConfiguration, maximumMessageSize: Int, logger: any IvyLogger,
        deadLetterScanLimit: Int
    ) async throws -> IronMQBackend {
        try configuration.validate()
        try IvyError.check("maximumMessageSize", maximumMessageSize, in: 1...(16 << 20))
        let backend = IronMQBackend(
            configuration: configuration, maximumMessageSize: maximumMessageSize, logger: logger,
            deadLetterScanLimit: deadLetterScanLimit)
        do { try await backend.client.checkCredentials() } catch {
            backend.client.close()
            throw error
        }
        return backend
    }

    private init(
        configuration: IronMQConfiguration, maximumMessageSize: Int, logger: any IvyLogger,
        deadLetterScanLimit: Int
    ) {
        client = IronMQClient(configuration: configuration)
        endpoint = configuration.endpoint
        self.maximumMessageSize = maximumMessageSize
        minimumReservation = configuration.minimumReservation
        self.logger = logger
        self.deadLetterScanLimit = deadLetterScanLimit
    }

    // MARK: Sending

    /// Single sends that arrive together go out as one post (up to 100 messages), so that many
    /// callers at once cost a few requests, not one each.
    public func send(_ body: [UInt8], to queue: QueueName) async throws -> String {
        try await submit(posted(body, to: queue), to: queue)
    }

    /// IronMQ's longest delay, 7 days (604,800 s). A call due later is posted with this delay,
    /// and the worker that receives it early posts it again with the rest (PROTOCOL.md §4).
    public var longestSendDelay: Duration { .seconds(Self.longestDelay) }

    /// Posted with `delay` (whole seconds, rounded up, so never early), in the same batches as
    /// other sends.
    public func send(_ body: [UInt8], to queue: QueueName, after delay: Duration) async throws -> String {
        guard delay > .zero else { return try await send(body, to: queue) }
        return try await submit(posted(body, to: queue, delay: delay), to: queue)
    }

    private func submit(_ message: IronMQClient.PostedMessage, to queue: QueueName) async throws -> String {
        try await senders.submit(message, key: queue.rawValue) { [client] batch, done in
            Task {
                do {
                    done(try await client.post(batch, to: queue.rawValue).map { .success($0) })
                } catch let error as IvyError
                    where batch.count > 1 && error.detail?.contains("HTTP 400") == true
                {
                    // One message the server refuses must not fail the others sent with it.
                    var outcomes: [Result<String, any Error>] = []
                    for message in batch {
                        do {
                            outcomes.append(.success(try await client.post([message], to: queue.rawValue)[0]))
                        } catch {
                            outcomes.append(.failure(error))
                        }
                    }
                    done(outcomes)
                } catch {
                    done(batch.map { _ in .failure(error) })
                }
            }
        }
    }

    public func send(batch bodies: [[UInt8]], to queue: QueueName) async throws -> [String] {
        let messages = try bodies.map { body in try posted(body, to: queue) }
        var ids: [String] = []
        ids.reserveCapacity(messages.count)
        var start = 0
        while start < messages.count {
            let end = min(messages.count, start + Self.maximumBatch)
            ids += try await client.post(Array(messages[start..<end]), to: queue.rawValue)
            start = end
        }
        return ids
    }

    /// A body as IronMQ takes it, checked before anything is sent: within the size limit, and
    /// UTF-8 text (IronMQ message bodies are JSON strings, as every Ivy message is text).
    private func posted(_ body: [UInt8], to queue: QueueName, delay: Duration? = nil) throws(IvyError)
        -> IronMQClient.PostedMessage
    {
        try checkSize(body, queue: queue)
        guard let text = String(validating: body, as: UTF8.self) else {
            throw IvyError(
                .malformedMessage, endpoint: endpoint,
                detail: "IronMQ carries text, and this body for queue \(queue) is not UTF-8")
        }
        return IronMQClient.PostedMessage(
            body: text, delay: delay.map { Self.seconds($0, in: 0...Self.longestDelay) })
    }

    // MARK: Consuming

    public func reserve(from queue: QueueName, count: Int, visibility: Duration, wait: Duration) async throws
        -> [Reservation<Receipt>]
    {
        precondition(count > 0, "count must be at least 1")
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: max(wait, .zero))
        let timeout = Self.seconds(max(visibility, minimumReservation), in: 1...Self.longestReservation)
        var created = false
        while true {
            if Task.isCancelled { return [] }
            // A long poll is never cut short: what the server has reserved by then comes back.
            let remaining = deadline - clock.now
            let poll = remaining > .zero ? Self.seconds(remaining, in: 0...Self.longestWait) : 0
            let started = clock.now
            guard
                let messages = try await client.reserve(
                    from: queue.rawValue, count: min(count, Self.maximumBatch), timeout: timeout, wait: poll,
                    absentOn404: !created)
            else {
                // No queue yet: make it, once, so that the next long poll waits on it.
                try await client.create(queue.rawValue)
                created = true
                continue
            }
            // Nothing, and the server answered well before the wait it was given (one that does
            // not long-poll): return rather than ask again in a busy loop.
            let answeredEarly = clock.now - started < .seconds(poll) / 2
            if !messages.isEmpty || clock.now >= deadline || answeredEarly {
                return messages.map { message in
                    Reservation(
                        queue: queue, messageID: message.id, body: Array(message.body.utf8),
                        deliveryCount: message.reservedCount,
                        receipt: Receipt(reservationID: message.reservationID))
                }
            }
        }
    }

    /// Acknowledgements that arrive together go out as one batch delete. IronMQ deletes all or
    /// none, so a batch it refuses is deleted again message by message, and each caller learns
    /// its own outcome.
    public func ack(_ reservation: Reservation<Receipt>) async throws {
        let queue = reservation.queue.rawValue
        let item = Acknowledgement(id: reservation.messageID, reservation: reservation.receipt.reservationID)
        _ = try await acknowledgers.submit(item, key: queue) { [client] batch, done in
            Task {
                guard batch.count > 1 else {
                    do {
                        try await client.delete(batch[0].id, reservation: batch[0].reservation, from: queue)
                        done([.success(true)])
                    } catch {
                        done([.failure(error)])
                    }
                    return
                }
                do {
                    try await client.delete(batch.map { ($0.id, $0.reservation) }, from: queue)
                    done(batch.map { _ in .success(true) })
                } catch {
                    var outcomes: [Result<Bool, any Error>] = []
                    for item in batch {
                        do {
                            try await client.delete(item.id, reservation: item.reservation, from: queue)
                            outcomes.append(.success(true))
                        } catch {
                            outcomes.append(.failure(error))
                        }
                    }
                    done(outcomes)
                }
            }
        }
    }

    private struct Acknowledgement: Sendable {
        let id: String
        let reservation: String
    }

    public func extend(_ reservation: Reservation<Receipt>, visibility: Duration) async throws
        -> Reservation<Receipt>
    {
        var extended = reservation
        let id = try await client.touch(
            reservation.messageID, reservation: reservation.receipt.reservationID,
            timeout: Self.seconds(max(visibility, minimumReservation), in: 1...Self.longestReservation),
            in: reservation.queue.rawValue)
        extended.receipt = Receipt(reservationID: id)
        return extended
    }

    public func release(_ reservation: Reservation<Receipt>, delay: Duration) async throws {
        try await client.release(
            reservation.messageID, reservation: reservation.receipt.reservationID,
            delay: Self.seconds(delay, in: 0...Self.longestDelay), in: reservation.queue.rawValue)
    }

    /// Yes: a touch raises `reserved_count`.
    public var deliveryCountIncludesExtensions: Bool { true }

    /// A retry as a new message (``ResendingQueueBackend``): posted with its delay, then
    /// the reservation deleted.
    public func resend(_ reservation: Reservation<Receipt>, as body: [UInt8], delay: Duration) async throws {
        let message = try posted(body, to: reservation.queue, delay: delay)
        let copy = try await client.post([message], to: reservation.queue.rawValue)[0]
        do {
            try await client.delete(
                reservation.messageID, reservation: reservation.receipt.reservationID,
                from: reservation.queue.rawValue)
        } catch {
            // The original will come back (its reservation is gone): take the copy back, so
            // that the retry runs once. A copy already reserved elsewhere stays, and both run.
            try? await client.delete(copy, reservation: nil, from: reservation.queue.rawValue)
            throw error
        }
    }

    // MARK: Pausing

    /// Creates the empty queue `<queue>--paused`, the marker every worker asks for.
    public func pause(_ queue: QueueName) async throws {
        try await client.create(Self.pauseMarker(queue))
    }

    /// Deletes the marker queue `<queue>--paused`.
    public func resume(_ queue: QueueName) async throws {
        try await client.deleteQueue(Self.pauseMarker(queue))
    }

    /// Whether the marker queue `<queue>--paused` exists (its info is not a 404).
    public func isPaused(_ queue: QueueName) async throws -> Bool {
        try await client.info(Self.pauseMarker(queue)) != nil
    }

    /// Reservations waiting on the server (for tests).
    var longPollsInFlight: Int { client.longPollsInFlight }

    public func close() async {
        client.close()
    }

    // MARK: Support

    static func deadQueue(_ queue: QueueName) -> String { "\(queue.rawValue)--dead" }

    /// The queue whose existence means that `queue` is paused. IronMQ queues hold no settings
    /// of an application's own, and a marker queue costs one request to look at, which says 404
    /// when it is absent; nothing is ever posted to it.
    static func pauseMarker(_ queue: QueueName) -> String { "\(queue.rawValue)--paused" }

    /// Whole seconds, rounded up, within `range`: what IronMQ's requests take.
    static func seconds(_ duration: Duration, in range: ClosedRange<Int>) -> Int {
        let milliseconds = duration.wholeMilliseconds
        let (rounded, overflow) = milliseconds.addingReportingOverflow(999)
        let seconds = overflow ? Int.max / 1000 : rounded / 1000
        return min(max(seconds, range.lowerBound), range.upperBound)
    }
}
