// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore
internal import Synchronization

/// A queue backend on RabbitMQ, or another AMQP 0-9-1 broker (`amqp://user:password@host/vhost`,
/// `amqps://…`; see ``AMQPConfiguration`` for the query items).
///
/// Each queue is a durable work queue with a dead-letter queue beside it, and delay queues that
/// hand messages back after their TTL (PROTOCOL.md §9). Sends are persistent, mandatory and
/// confirmed: `send` returns once the broker has the message on disk. A worker consumes with
/// manual acks and a prefetch of its concurrency; a delivery it reserves is hidden from others
/// for as long as the delivery is unacknowledged, and the backend gives it back itself when the
/// visibility timeout runs out first (see ``extend(_:visibility:)``).
///
/// One connection, on a thread of its own, carries everything; it is opened again when it is
/// lost (the reservations it held are then lost, and the broker delivers their messages again)
/// and replaced every `recycle` seconds (one hour by default).
///
/// Delivery counts: a message moved by Ivy (released, delayed, expired) carries how many times it
/// was delivered before in an `x-ivy-deliveries` header; on top of that, a quorum queue counts
/// its returns exactly (`x-delivery-count`), while a classic queue only flags a redelivery, so a
/// message that came back several times from crashed workers counts once. Prefer
/// `queue_type=quorum` where crash loops must end.
public final class AMQPBackend: InspectableQueueBackend, DelayedSendQueueBackend {
    public struct Receipt: Sendable, Hashable {
        fileprivate let key: UInt64
    }

    public let endpoint: String
    public let maximumMessageSize: Int

    let configuration: AMQPConfiguration
    let topology: AMQPTopology
    let logger: any IvyLogger
    let link: AMQPLink
    private let holdings: AMQPHoldings
    private let inlets = Mutex<[QueueName: AMQPInlet]>([:])
    /// Queues declared on the broker since this backend started.
    private let declared = Mutex<Set<String>>([])
    private let idPrefix: String
    private let idCounter = Atomic<UInt64>(0)
    private let isClosed = Atomic<Bool>(false)
    private let janitor = Mutex<Task<Void, Never>?>(nil)
    /// How long a consumer may go without a reserve before it is stopped.
    private let idleConsumerLimit: Duration
    /// How many dead letters ``requeueDeadLetter(of:messageID:)`` and
    /// ``deleteDeadLetter(of:messageID:)`` look at, at most: each is held, unacknowledged and in
    /// memory, until the look ends.
    let deadLetterScanLimit: Int

    /// Connects to the broker the URL names, and logs in.
    ///
    /// - Parameters:
    ///   - maximumMessageSize: The largest body accepted: 16 MiB by default (RabbitMQ takes up to
    ///     128 MiB, and recommends much less).
    ///   - name: Shown by the broker for the connection.
    /// - Throws: ``IvyError/Code/invalidURL`` or ``IvyError/Code/invalidConfiguration`` for the
    ///   URL and settings; ``IvyError/Code/connectionFailed`` for a broker out of reach, a wrong
    ///   user or password, or an unknown virtual host.
    public static func connect(
        url: String, maximumMessageSize: Int = 16 << 20, name: String = "ivy",
        logger: any IvyLogger = StderrLogger()
    ) async throws -> AMQPBackend {
        try await connect(
            configuration: AMQPConfiguration(url: url), maximumMessageSize: maximumMessageSize, name: name,
            logger: logger)
    }

    /// Connects with a configuration made by hand; see ``connect(url:maximumMessageSize:name:logger:)``.
    public static func connect(
        configuration: AMQPConfiguration, maximumMessageSize: Int = 16 << 20, name: String = "ivy",
        logger: any IvyLogger = StderrLogger()
    ) async throws -> AMQPBackend {
        try await connect(
            configuration: configuration, maximumMessageSize: maximumMessageSize, name: name, logger: logger,
            idleConsumerLimit: .seconds(30))
    }

    /// - Parameters:
    ///   - idleConsumerLimit: How long a consumer may go without a reserve before it is stopped
    ///     and what it received given back (so that a worker that stopped on a connection its
    ///     process keeps using leaves no messages hidden behind it); shorter in tests.
    ///   - deadLetterScanLimit: How many dead letters ``requeueDeadLetter(of:messageID:)`` and
    ///     ``deleteDeadLetter(of:messageID:)`` look at, at most; smaller in tests.
    static func connect(
        configuration: AMQPConfiguration, maximumMessageSize: Int, name: String, logger: any IvyLogger,
        idleConsumerLimit: Duration, deadLetterScanLimit: Int = 10_000
    ) async throws -> AMQPBackend {
        try configuration.validate()
        try IvyError.check("maximumMessageSize", maximumMessageSize, in: 1...(128 << 20))
        let backend = AMQPBackend(
            configuration: configuration, maximumMessageSize: maximumMessageSize, name: name, logger: logger,
            idleConsumerLimit: idleConsumerLimit, deadLetterScanLimit: deadLetterScanLimit)
        do { _ = try await backend.link.connection() } catch {
            await backend.link.close()
            throw error
        }
        return backend
    }

    private init(
        configuration: AMQPConfiguration, maximumMessageSize: Int, name: String, logger: any IvyLogger,
        idleConsumerLimit: Duration, deadLetterScanLimit: Int
    ) {
        self.idleConsumerLimit = idleConsumerLimit
        self.deadLetterScanLimit = deadLetterScanLimit
        self.configuration = configuration
        endpoint = configuration.endpoint
        self.maximumMessageSize = maximumMessageSize
        self.logger = logger
        topology = AMQPTopology(queueType: configuration.queueType)
        idPrefix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        // The link and the holdings call back into the backend, which they cannot name yet.
        let changed = Forwarder<Void, Void>()
        let inUse = Forwarder<UInt64, Bool>()
        let expired = Forwarder<[AMQPHoldings.Held], Void>()
        link = AMQPLink(
            configuration: configuration, name: name, logger: logger, onChange: { changed.send(()) ?? () },
            isInUse: { inUse.send($0) ?? false })
        holdings = AMQPHoldings { expired.send($0) ?? () }
        changed.connect { [weak self] _ in self?.connectionChanged() }
        inUse.connect { [weak self] generation in self?.isInUse(generation) ?? false }
        expired.connect { [weak self] in self?.putBack($0) }
    }

    // MARK: Sending

    public func send(_ body: [UInt8], to queue: QueueName) async throws -> String {
        try checkSize(body, queue: queue)
        let id = "\(idPrefix)-\(idCounter.add(1, ordering: .relaxed).newValue)"
        try await publish(body, to: queue.rawValue, declaring: queue, messageID: id)
        return id
    }

    /// The longest rung of the delay ladder, 500,000 s (PROTOCOL.md §9).
    public var longestSendDelay: Duration { .milliseconds(AMQPTopology.rungs[AMQPTopology.rungs.count - 1]) }

    /// Publishes the message (persistent, confirmed) to the delay queue of the longest rung no
    /// longer than `delay`, from which the broker moves it to
    /// the queue when the rung's TTL runs out. It so arrives early unless the delay is a rung;
    /// the worker then sends it again for the rest (PROTOCOL.md §4).
    public func send(_ body: [UInt8], to queue: QueueName, after delay: Duration) async throws -> String {
        guard delay > .zero else { return try await send(body, to: queue) }
        try checkSize(body, queue: queue)
        let id = "\(idPrefix)-\(idCounter.add(1, ordering: .relaxed).newValue)"
        try await publish(
            body, to: AMQPTopology.delay(queue, rung: AMQPTopology.sendRung(for: delay)), declaring: queue,
            messageID: id)
        return id
    }

    /// Hands the whole batch to the connection in order, and then waits for the confirms, which
    /// share round trips; a publish that failed is tried again on its own (and may then come
    /// after the others).
    public func send(batch bodies: [[UInt8]], to queue: QueueName) async throws -> [String] {
        for body in bodies { try checkSize(body, queue: queue) }
        guard let first = bodies.first else { return [] }
        let start = idCounter.add(UInt64(bodies.count), ordering: .relaxed).newValue - UInt64(bodies.count)
        let ids = bodies.indices.map { "\(idPrefix)-\(start + UInt64($0) + 1)" }
        // One first, which declares the queue if need be.
        try await publish(first, to: queue.rawValue, declaring: queue, messageID: ids[0])
        let connection = try await link.connection()
        let rest = Array(bodies.indices.dropFirst())
        let outcomes: [Result<Void, IvyError>] = await withCheckedContinuation { continuation in
            let results = Mutex(
                (left: rest.count, outcomes: [Result<Void, IvyError>?](repeating: nil, count: bodies.count)))
            if rest.isEmpty { return continuation.resume(returning: []) }
            for index in rest {
                connection.publish(body: bodies[index], routingKey: queue.rawValue, messageID: ids[index]) {
                    outcome in
                    let done = results.withLock { results -> [Result<Void, IvyError>]? in
                        results.outcomes[index] = outcome
                        results.left -= 1
                        return results.left == 0 ? results.outcomes.compactMap { $0 } : nil
                    }
                    if let done { continuation.resume(returning: done) }
                }
            }
        }
        for (index, outcome) in zip(rest, outcomes) where (try? outcome.get()) == nil {
            try await publish(bodies[index], to: queue.rawValue, declaring: queue, messageID: ids[index])
        }
        return ids
    }

    /// Publishes a persistent, mandatory message and waits for the broker's confirm, declaring
    /// `queue`'s queues first if this backend has not yet. A connection lost on the way, a
    /// broker away for a moment, or one that refuses the message (`basic.nack`: a quorum queue
    /// electing a leader) is waited out while the send deadline lasts, and the publish repeated
    /// (after a lost connection the broker may then hold it twice); a queue deleted meanwhile is
    /// declared again.
    func publish(
        _ body: [UInt8], to routingKey: String, declaring queue: QueueName, messageID: String,
        headers: [String: AMQPHeaderValue] = [:]
    ) async throws(IvyError) {
        let deadline = ContinuousClock.now + configuration.sendDeadline
        var redeclared = false
        var pause = Duration.milliseconds(100)
        var nackedOn: UInt64?
        while true {
            var connection: AMQPConnection?
            do {
                let current = try await link.connection(until: deadline)
                connection = current
                try await declare(queue, on: current)
                if routingKey != queue.rawValue { try await declare(routingKey, for: queue, on: current) }
                try await current.publish(
                    body: body, routingKey: routingKey, headers: headers, messageID: messageID)
                return
            } catch
                where error.code == .commandFailed && error.detail?.contains("NO_ROUTE") == true
                && !redeclared
            {
                redeclared = true
                declared.withLock { $0.subtract([queue.rawValue, routingKey]) }
            } catch
                where (error.code == .connectionFailed || error.code == .closed)
                && connection?.isAlive != true && !isClosed.load(ordering: .relaxed) && .now < deadline
            {
                // The broker is away or the connection went: the link opens a new one no sooner
                // than its reconnect schedule allows, so this waits rather than spins.
                continue
            } catch
                where error.code == .commandFailed && error.detail?.contains("basic.nack") == true
                && !isClosed.load(ordering: .relaxed) && .now + pause < deadline
            {
                // The broker did not take it: a quorum queue between leaders (a node of its
                // cluster died), or one refusing publishes while full. Again, a little later, on
                // a new connection after a second refusal on the same one (a channel may stay on
                // a dead leader).
                if let connection {
                    if nackedOn == connection.generation { link.replace(generation: connection.generation) }
                    nackedOn = connection.generation
                }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    // MARK: Declaring

    /// Declares the work queue and its dead-letter queue, once per backend.
    private func declare(_ queue: QueueName, on connection: AMQPConnection) async throws(IvyError) {
        guard !declared.withLock({ $0.contains(queue.rawValue) }) else { return }
        try await connection.declareQueue(queue.rawValue, arguments: topology.workQueueArguments(for: queue))
        try await connection.declareQueue(AMQPTopology.dead(queue), arguments: topology.queueArguments)
        declared.withLock { _ = $0.insert(queue.rawValue) }
    }

    /// Declares one of `queue`'s delay or dead-letter queues, once per backend.
    private func declare(_ name: String, for queue: QueueName, on connection: AMQPConnection)
        async throws(IvyError)
    {
        guard !declared.withLock({ $0.contains(name) }) else { return }
        let rung = AMQPTopology.rungs.first { AMQPTopology.delay(queue, rung: $0) == name }
        let arguments = rung.map { topology.delayArguments(for: queue, rung: $0) } ?? topology.queueArguments
        try await connection.declareQueue(name, arguments: arguments)
        declared.withLock { _ = $0.insert(name) }
    }

    // MARK: Consuming

    /// With `wait`, through the queue's consumer (started on the first such call); without, one
    /// look: what the consumer already received, else `basic.get`, so that a look leaves no
    /// consumer behind to take messages nobody asked for.
    public func reserve(from queue: QueueName, count: Int, visibility: Duration, wait: Duration) async throws
        -> [Reservation<Receipt>]
    {
        precondition(count > 0, "count must be at least 1")
        if isClosed.load(ordering: .relaxed) { throw IvyError(.closed, endpoint: endpoint) }
        let inlet = inlet(for: queue)
        inlet.reserveBegan()
        defer { inlet.reserveEnded() }
        do {
            return try await reserve(from: inlet, count: count, visibility: visibility, wait: wait)
        } catch {
            if Task.isCancelled { return [] }
            throw error
        }
    }

    private func reserve(from inlet: AMQPInlet, count: Int, visibility: Duration, wait: Duration)
        async throws(IvyError) -> [Reservation<Receipt>]
    {
        let queue = inlet.queue
        let start = ContinuousClock.now
        let deadline = start + wait
        // Opening a connection may take its connect timeout even when the caller only looks.
        let connectDeadline = max(deadline, start + configuration.connectTimeout)
        if wait <= .zero {
            let buffered = hand(inlet.take(count), from: queue, visibility: visibility)
            if !buffered.isEmpty { return buffered }
            return try await look(into: queue, count: count, visibility: visibility, until: connectDeadline)
        }
        while !Task.isCancelled && !isClosed.load(ordering: .relaxed) {
            try await startConsumer(inlet, count: count, until: connectDeadline)
            var deliveries = inlet.take(count)
            if deliveries.isEmpty {
                let remaining = deadline - .now
                if remaining <= .zero { return [] }
                deliveries = await inlet.wait(count, for: remaining)
            }
            let reservations = hand(deliveries, from: queue, visibility: visibility)
            if !reservations.isEmpty || ContinuousClock.now >= deadline { return reservations }
        }
        return []  // cancelled, or closed while it waited
    }

    /// Up to `count` messages taken with `basic.get`, one round trip each, stopping at the first
    /// miss.
    private func look(
        into queue: QueueName, count: Int, visibility: Duration, until deadline: ContinuousClock.Instant
    ) async throws(IvyError) -> [Reservation<Receipt>] {
        let connection = try await link.connection(until: deadline, cancellable: true)
        try await declare(queue, on: connection)
        var deliveries: [AMQPDelivery] = []
        do {
            while deliveries.count < count, let delivery = try await connection.get(queue.rawValue) {
                deliveries.append(delivery)
            }
        } catch {
            // What it took is handed out; only a look that took nothing fails.
            if deliveries.isEmpty { throw error }
        }
        return hand(deliveries, from: queue, visibility: visibility)
    }

    /// Reservations of the deliveries that can still be settled; the others the broker returns.
    private func hand(_ deliveries: [AMQPDelivery], from queue: QueueName, visibility: Duration)
        -> [Reservation<Receipt>]
    {
        let deadline = ContinuousClock.now + visibility
        var reservations: [Reservation<Receipt>] = []
        reservations.reserveCapacity(deliveries.count)
        for delivery in deliveries where isSettleable(delivery) {
            let messageID = Self.messageID(of: delivery)
            let count = topology.deliveryCount(of: delivery)
            let key = holdings.hold(
                .init(
                    delivery: delivery, queue: queue, messageID: messageID, deliveryCount: count,
                    deadline: deadline))
            reservations.append(
                Reservation(
                    queue: queue, messageID: messageID, body: delivery.body, deliveryCount: count,
                    receipt: Receipt(key: key)))
        }
        return reservations
    }

    /// A delivery's `message_id`, or one made from where it was delivered when it has none Ivy
    /// could publish again (empty, or over AMQP's 255 bytes once its invalid UTF-8 is replaced):
    /// a message must always be movable to the dead letter.
    static func messageID(of delivery: AMQPDelivery) -> String {
        if let id = delivery.messageID, !id.isEmpty, id.utf8.count <= 255 { return id }
        return "amqp-\(delivery.generation)-\(delivery.deliveryTag)"
    }

    /// Starts `inlet`'s consumer on the current connection when it has none there, or one whose
    /// prefetch is below `count`; the consumer it replaces is cancelled. A queue deleted under a
    /// consumer is declared again.
    private func startConsumer(_ inlet: AMQPInlet, count: Int, until deadline: ContinuousClock.Instant)
        async throws(IvyError)
    {
        let connection = try await link.connection(until: deadline, cancellable: true)
        guard inlet.claimStart(generation: connection.generation, count: count) else { return }
        var started: AMQPInlet.Consumer?
        defer {
            if let replaced = inlet.started(started),
                let old = link.connection(generation: replaced.generation)
            {
                Task { try? await old.cancel(consumerTag: replaced.tag) }
            }
        }
        let prefetch = min(
            max(count, inlet.consumer.map { $0.generation == connection.generation ? $0.prefetch : 0 } ?? 0),
            Int(UInt16.max))
        for attempt in 1...2 {
            try await declare(inlet.queue, on: connection)
            do {
                let tag = try await connection.consume(
                    inlet.queue.rawValue, prefetch: prefetch, onDelivery: { inlet.deliver($0) },
                    onBurstEnd: { inlet.burstEnded() },
                    onCancel: { [weak inlet] in inlet?.cancelledByBroker() })
                started = AMQPInlet.Consumer(tag: tag, generation: connection.generation, prefetch: prefetch)
                startJanitor()
                return
            } catch  where attempt == 1 && error.detail?.contains("NOT_FOUND") == true {
                declared.withLock { _ = $0.remove(inlet.queue.rawValue) }
            }
        }
    }

    private func inlet(for queue: QueueName) -> AMQPInlet {
        inlets.withLock { inlets in
            if let inlet = inlets[queue] { return inlet }
            let inlet = AMQPInlet(queue: queue)
            inlets[queue] = inlet
            return inlet
        }
    }

    /// The connection was lost or retired: waiting reserves start consumers on the next one.
    private func connectionChanged() {
        let current = link.currentGeneration
        holdings.forget { !isSettleable($0) }
        let inlets = inlets.withLock { Array($0.values) }
        for inlet in inlets {
            inlet.connectionChanged { generation in
                generation == current || link.connection(generation: generation) != nil
            }
        }
    }

    // MARK: Settling

    public func ack(_ reservation: Reservation<Receipt>) async throws {
        let held = try take(reservation)
        guard let connection = link.connection(generation: held.delivery.generation) else {
            throw lost(reservation, "its connection is gone, and the broker gives the message to another")
        }
        try await connection.ack(deliveryTag: held.delivery.deliveryTag)
    }

    /// Moves the reservation's deadline; the broker is not asked, and promises nothing more than
    /// before: the delivery stays reserved as long as the connection lives.
    public func extend(_ reservation: Reservation<Receipt>, visibility: Duration) async throws
        -> Reservation<Receipt>
    {
        guard holdings.extend(reservation.receipt.key, to: .now + visibility, if: { isSettleable($0) }) else {
            throw lost(reservation, "its visibility timeout ran out or its connection is gone")
        }
        return reservation
    }

    /// Sends a copy that carries the delivery count to the queue (or, with a delay, to the delay
    /// queue of the next rung up), then acks the delivery.
    public func release(_ reservation: Reservation<Receipt>, delay: Duration) async throws {
        let held = try take(reservation)
        let target =
            delay > .zero
            ? AMQPTopology.delay(reservation.queue, rung: AMQPTopology.rung(for: delay))
            : reservation.queue.rawValue
        try await move(held, key: reservation.receipt.key, to: target, headers: [:])
    }

    public func deadLetter(_ reservation: Reservation<Receipt>, reason: String) async throws {
        let held = try take(reservation)
        let headers: [String: AMQPHeaderValue] = [
            AMQPTopology.reasonHeader: .string(AMQPTopology.clipped(reason)),
            AMQPTopology.queueHeader: .string(reservation.queue.rawValue),
            AMQPTopology.deadLetteredAtHeader: .integer(Int64(Date().timeIntervalSince1970 * 1000)),
        ]
        try await move(
            held, key: reservation.receipt.key, to: AMQPTopology.dead(reservation.queue), headers: headers)
    }

    /// Replaces a held delivery by a copy in `target`; when the copy cannot be sent, the
    /// reservation is held again, unchanged.
    private func move(
        _ held: AMQPHoldings.Held, key: UInt64, to target: String, headers: [String: AMQPHeaderValue]
    ) async throws(IvyError) {
        do {
            try await replace(
                held.delivery, of: held.queue, messageID: held.messageID,
                deliveriesBefore: held.deliveryCount,
                to: target, headers: headers)
        } catch {
            if error.code != .reservationLost && isSettleable(held.delivery) { holdings.restore(key, held) }
            throw error
        }
    }

    /// Publishes a copy of a delivery to `target`, carrying how many deliveries came before it,
    /// then acks the delivery on the connection that made it: a move, which RabbitMQ cannot do
    /// in place. Nothing is sent when that connection is gone (the broker has given the message
    /// back already), so a move never makes a second copy; one whose connection goes between the
    /// confirm and the ack does (the message then runs twice rather than not at all).
    func replace(
        _ delivery: AMQPDelivery, of queue: QueueName, messageID: String, deliveriesBefore: Int,
        to target: String,
        headers: [String: AMQPHeaderValue] = [:]
    ) async throws(IvyError) {
        guard let connection = link.connection(generation: delivery.generation) else {
            throw IvyError(
                .reservationLost, endpoint: endpoint,
                detail: "message \(messageID) of queue \(queue): its connection is gone")
        }
        var headers = headers
        headers[AMQPTopology.deliveriesHeader] = .integer(Int64(deliveriesBefore))
        try await publish(delivery.body, to: target, declaring: queue, messageID: messageID, headers: headers)
        do { try await connection.ack(deliveryTag: delivery.deliveryTag) } catch {
            throw IvyError(
                .reservationLost, endpoint: endpoint,
                detail: "message \(messageID) of queue \(queue) was moved to \(target), but its connection "
                    + "went before the ack: it will run again from there too")
        }
    }

    /// Visibility timeouts that ran out: each goes back to its queue as a copy that counts this
    /// delivery, or, when that fails, is rejected back to where it was.
    private func putBack(_ expired: [AMQPHoldings.Held]) {
        for held in expired {
            Task { () async -> Void in
                do throws(IvyError) {
                    try await replace(
                        held.delivery, of: held.queue, messageID: held.messageID,
                        deliveriesBefore: held.deliveryCount, to: held.queue.rawValue)
                } catch {
                    guard error.code != .reservationLost else { return }
                    try? await link.connection(generation: held.delivery.generation)?.reject(
                        deliveryTag: held.delivery.deliveryTag, requeue: true)
                }
            }
        }
    }

    /// Whether the connection that made a delivery can still settle it.
    private func isSettleable(_ delivery: AMQPDelivery) -> Bool {
        link.connection(generation: delivery.generation) != nil
    }

    private func take(_ reservation: Reservation<Receipt>) throws(IvyError) -> AMQPHoldings.Held {
        guard let held = holdings.take(reservation.receipt.key) else {
            throw lost(reservation, "its visibility timeout ran out or its connection is gone")
        }
        return held
    }

    private func lost(_ reservation: Reservation<Receipt>, _ why: String) -> IvyError {
        IvyError(
            .reservationLost, endpoint: endpoint,
            detail: "message \(reservation.messageID) of queue \(reservation.queue): \(why)")
    }

    /// Whether deliveries of connection `generation` are still held or wait to be reserved.
    private func isInUse(_ generation: UInt64) -> Bool {
        holdings.holds(generation: generation)
            || inlets.withLock { inlets in inlets.values.contains { $0.holds(generation: generation) } }
    }

    /// How many of `queue`'s deliveries this backend holds: reserved, and delivered to its
    /// consumer but not reserved yet (ready, for anyone who asks).
    func held(in queue: QueueName) -> (reserved: Int, buffered: Int) {
        (holdings.count(of: queue), inlets.withLock { $0[queue] }?.bufferedCount ?? 0)
    }

    // MARK: Closing

    /// Stops the consumers, gives back what they received and nobody reserved (as copies that do
    /// not count those deliveries, so that restarting workers does not wear out a message's
    /// allowance), and closes the connection; the broker returns what is still reserved. Giving
    /// back stops at the first failure and takes at most the send deadline.
    public func close() async {
        guard !isClosed.exchange(true, ordering: .relaxed) else { return }
        janitor.withLock { $0.take() }?.cancel()
        let inlets = inlets.withLock { Array($0.values) }
        let done = OneShot()
        let giving = Task {
            await withDiscardingTaskGroup { group in
                for inlet in inlets { group.addTask { await self.giveBack(inlet) } }
            }
            done.fire()
        }
        let deadline = Task {
            try? await Task.sleep(for: configuration.sendDeadline)
            done.fire()
        }
        await done.wait()
        deadline.cancel()
        holdings.close()
        await link.close()
        await giving.value
    }

    // MARK: Idle consumers

    /// Starts, once, the task that stops idle consumers.
    private func startJanitor() {
        janitor.withLock { janitor in
            guard janitor == nil, !isClosed.load(ordering: .relaxed) else { return }
            janitor = Task { [weak self] in
                while !Task.isCancelled {
                    guard let limit = self?.idleConsumerLimit else { return }
                    try? await Task.sleep(for: limit / 4)
                    guard let self, !Task.isCancelled else { return }
                    let inlets = inlets.withLock { Array($0.values) }
                    for inlet in inlets where inlet.isIdle(for: limit) {
                        await giveBack(inlet)
                    }
                }
            }
        }
    }

    /// Stops consuming `queue` when no reserve is under way on it, giving back what its consumer
    /// received: called when the queue is found paused, so that what is sent to it meanwhile
    /// stays ready in the queue, where every connection counts, peeks and purges it, instead of
    /// waiting unreserved in this consumer's prefetch. The next reserve consumes again.
    func stopConsuming(_ queue: QueueName) async {
        guard let inlet = inlets.withLock({ $0[queue] }), inlet.isIdle(for: .zero) else { return }
        await giveBack(inlet)
    }

    /// Cancels `inlet`'s consumer and sends back what it received and nobody reserved, as
    /// copies that do not count those deliveries; stops at the first failure (the broker then
    /// returns the rest when the connection closes). A quorum queue returns, counted, what it
    /// was delivering when the cancel came (RabbitMQ's own choice); what arrived is copied.
    private func giveBack(_ inlet: AMQPInlet) async {
        guard let consumer = inlet.stop() else { return }
        if let connection = link.connection(generation: consumer.generation) {
            try? await connection.cancel(consumerTag: consumer.tag)
        }
        var left = inlet.drain().filter(isSettleable)[...]
        var given: [String] = []
        defer {
            if !given.isEmpty {
                logger.debug(
                    "gave back what an idle consumer received",
                    ["queue": inlet.queue.rawValue, "messages": given.joined(separator: ",")])
            }
        }
        while let delivery = left.first {
            do throws(IvyError) {
                let messageID = Self.messageID(of: delivery)
                try await replace(
                    delivery, of: inlet.queue, messageID: messageID,
                    deliveriesBefore: topology.deliveryCount(of: delivery) - 1, to: inlet.queue.rawValue)
                given.append(messageID)
                left = left.dropFirst()
            } catch {
                logger.debug(
                    "giving back a received message failed; rejecting the rest back to the queue",
                    ["queue": inlet.queue.rawValue, "error": "\(error)"])
                // The broker counts these (a quorum queue), but they must not stay hidden.
                for delivery in left {
                    try? await link.connection(generation: delivery.generation)?.reject(
                        deliveryTag: delivery.deliveryTag, requeue: true)
                }
                return
            }
        }
    }
}

/// Passes values to a receiver connected after the sender was made.
private final class Forwarder<Value, Answer>: Sendable {
    private let receiver = Mutex<(@Sendable (Value) -> Answer)?>(nil)

    func connect(_ receiver: @escaping @Sendable (Value) -> Answer) {
        self.receiver.withLock { $0 = receiver }
    }

    /// The receiver's answer; nil before one is connected.
    func send(_ value: Value) -> Answer? { receiver.withLock { $0 }.map { $0(value) } }
}
