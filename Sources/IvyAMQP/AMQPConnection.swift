// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

package import IvyCore
internal import Synchronization

/// One AMQP 0-9-1 connection to RabbitMQ that owns one OS thread: every rabbitmq-c call runs
/// there, never on the cooperative pool.
///
/// Channel 1 is in confirm mode and carries publishes, consumers, `basic.get` and acks (one
/// delivery tag space); channel 2 carries declarations and inspection, so that a refused one
/// (a passive declare of a missing queue: 404) closes only channel 2, which is opened again.
///
/// Commands from any task are handed to the thread through a locked inbox and a wake pipe;
/// the thread writes whatever is waiting back to back, so concurrent publishes share their
/// confirm round trips. A publish returns once the broker confirmed it (`basic.ack`), and
/// fails on `basic.nack`, on `basic.return` (no queue took it: publishes are mandatory), when
/// the send deadline passes, and when the connection ends.
///
/// A connection does not reconnect: when the broker closes it, a heartbeat goes missing or a
/// channel 1 error ends it, everything pending fails, ``isAlive`` turns false and `onClosed`
/// is called. Whoever owns it opens a new one; deliveries carry the ``generation`` of the
/// connection that made them, and acks on a connection that is gone fail with
/// ``IvyError/Code/reservationLost`` (the broker delivers those messages again).
///
/// ```swift
/// let connection = try await AMQPConnection.open(try AMQPConfiguration(url: url), name: "ivy-producer")
/// _ = try await connection.declareQueue("jobs")
/// try await connection.publish(body: Array("hello".utf8), routingKey: "jobs", messageID: "job-1")
/// await connection.close()
/// ```
package final class AMQPConnection: Sendable {
    /// What `queue.declare` reports: messages ready (not those delivered and unacked) and consumers.
    package typealias QueueCounts = (messages: Int, consumers: Int)

    package let configuration: AMQPConfiguration
    /// The connection's name at the broker (`connection_name`) and its thread's.
    package let name: String
    /// The number its owner gave it, carried by its deliveries.
    package let generation: UInt64
    private let inbox: AMQPInbox
    private let consumerCount = Atomic<UInt64>(0)

    private init(configuration: AMQPConfiguration, name: String, generation: UInt64, inbox: AMQPInbox) {
        self.configuration = configuration
        self.name = name
        self.generation = generation
        self.inbox = inbox
    }

    deinit { inbox.close() }

    /// Connects, logs in and opens the channels on a new thread of the connection's own.
    ///
    /// - Parameters:
    ///   - name: Shown by the broker (management UI, `rabbitmqctl list_connections
    ///     client_properties`) and as the thread's name.
    ///   - generation: A number the owner chooses, carried by every ``AMQPDelivery`` this
    ///     connection makes, so that after a reconnect it can tell which connection an ack is for.
    ///   - onClosed: Called once, on the connection's thread, when the connection ends other than
    ///     by ``close()``, after everything pending has failed with the same error.
    /// - Throws: ``IvyError/Code/connectionFailed`` when the broker cannot be reached or the TLS
    ///   handshake fails, when it refuses the user or password (its `ACCESS_REFUSED` text; never
    ///   the password) or the virtual host (named in the error), or when that takes longer than the
    ///   connect timeout; ``IvyError/Code/invalidConfiguration`` for values out of range.
    package static func open(
        _ configuration: AMQPConfiguration, name: String = "ivy-amqp", generation: UInt64 = 0,
        onClosed: @escaping @Sendable (IvyError) -> Void = { _ in }
    ) async throws(IvyError) -> AMQPConnection {
        try configuration.validate()
        let inbox = AMQPInbox(endpoint: configuration.endpoint)
        let opened: Result<Void, IvyError> = await withCheckedContinuation { continuation in
            DedicatedThread.start(name: name) {
                AMQPConnectionDriver.run(
                    configuration, name: name, generation: generation, inbox: inbox, onClosed: onClosed
                ) { continuation.resume(returning: $0) }
            }
        }
        try opened.get()
        return AMQPConnection(configuration: configuration, name: name, generation: generation, inbox: inbox)
    }

    /// The broker, its password as `***`.
    package var endpoint: String { configuration.endpoint }

    /// False once the connection was closed or lost; commands then fail at once.
    package var isAlive: Bool { inbox.isAlive }

    // MARK: Publishing

    /// Publishes a persistent message and returns once the broker has confirmed it.
    ///
    /// The message is mandatory: when no queue takes it (no queue of that name), the broker
    /// returns it and this throws, instead of the broker dropping it silently. Cancelling the
    /// calling task does not stop the wait, which the send deadline bounds.
    ///
    /// - Parameters:
    ///   - exchange: `""` is the default exchange, which routes to the queue named `routingKey`.
    ///     Publishing to an exchange that does not exist makes the broker close channel 1, which
    ///     ends the connection.
    ///   - messageID: The `message_id` property, which also ties a `basic.return` to this
    ///     publish: not empty, and unique among the publishes in flight to the same queue.
    ///   - persistent: Delivery mode 2 (written to disk by durable queues) or 1.
    /// - Throws: ``IvyError/Code/commandFailed`` when the broker returns or refuses the message,
    ///   or does not confirm it within the send deadline (then it may or may not be queued);
    ///   ``IvyError/Code/connectionFailed`` or ``IvyError/Code/closed`` when the connection ends
    ///   first; ``IvyError/Code/messageTooLarge`` for a body over 128 MiB, RabbitMQ's limit.
    package func publish(
        body: [UInt8], routingKey: String, exchange: String = "", headers: [String: AMQPHeaderValue] = [:],
        messageID: String, persistent: Bool = true
    ) async throws(IvyError) {
        try await completing { completion in
            publish(
                body: body, routingKey: routingKey, exchange: exchange, headers: headers,
                messageID: messageID,
                persistent: persistent, completion: completion)
        }
    }

    /// ``publish(body:routingKey:exchange:headers:messageID:persistent:)`` without suspending:
    /// `completion` gets the outcome on the connection's thread (or the caller's, when the
    /// connection has ended), and must return quickly.
    package func publish(
        body: [UInt8], routingKey: String, exchange: String = "", headers: [String: AMQPHeaderValue] = [:],
        messageID: String, persistent: Bool = true,
        completion: @escaping @Sendable (Result<Void, IvyError>) -> Void
    ) {
        do throws(IvyError) {
            try shortString(routingKey, "the routing key")
            try shortString(exchange, "the exchange name")
            try shortString(messageID, "the message id")
            guard !messageID.isEmpty else { throw commandFailed("a message id is required") }
            for key in headers.keys { try shortString(key, "the header name \"\(key.prefix(40))…\"") }
            guard body.count <= Self.largestBody else {
                throw IvyError(
                    .messageTooLarge, endpoint: endpoint,
                    detail: "the body is \(body.count) bytes; RabbitMQ takes at most \(Self.largestBody)")
            }
        } catch {
            return completion(.failure(error))
        }
        inbox.submit(
            .publish(
                .init(
                    exchange: exchange, routingKey: routingKey, body: body, headers: headers,
                    messageID: messageID,
                    persistent: persistent, deadline: .now + configuration.sendDeadline,
                    completion: completion)))
    }

    // MARK: Queues

    /// Declares a queue on channel 2, or with `passive` checks that it exists, and returns its
    /// counts.
    ///
    /// - Parameter arguments: `x-queue-type`, `x-dead-letter-exchange`,
    ///   `x-dead-letter-routing-key`, `x-message-ttl`, `x-expires` and the like. Declaring an
    ///   existing queue with other arguments is refused (406 `PRECONDITION_FAILED`).
    /// - Throws: ``IvyError/Code/commandFailed`` with the broker's text when it refuses
    ///   (`NOT_FOUND - no queue 'x' in vhost 'y'` for a passive declare of a missing queue); the
    ///   connection stays usable.
    @discardableResult
    package func declareQueue(
        _ name: String, durable: Bool = true, arguments: [String: AMQPHeaderValue] = [:],
        passive: Bool = false
    ) async throws(IvyError) -> QueueCounts {
        try shortString(name, "the queue name")
        for key in arguments.keys { try shortString(key, "the argument name \"\(key.prefix(40))…\"") }
        return try await perform {
            .declareQueue(name: name, durable: durable, arguments: arguments, passive: passive, $0)
        }
    }

    /// Removes a queue's ready messages; returns how many.
    @discardableResult
    package func purge(_ queue: String) async throws(IvyError) -> Int {
        try shortString(queue, "the queue name")
        return try await perform { .purgeQueue(queue, $0) }
    }

    /// Deletes a queue and its messages; returns how many messages went with it. Its consumers
    /// are cancelled by the broker.
    @discardableResult
    package func deleteQueue(_ queue: String) async throws(IvyError) -> Int {
        try shortString(queue, "the queue name")
        return try await perform { .deleteQueue(queue, $0) }
    }

    // MARK: Receiving

    /// Takes one message from `queue` (`basic.get`, manual ack) on channel 1; nil when it is
    /// empty. Settle it with ``ack(deliveryTag:)`` or ``reject(deliveryTag:requeue:)``.
    ///
    /// - Throws: ``IvyError/Code/commandFailed`` when the queue does not exist (checked on
    ///   channel 2 first, so channel 1 stays open).
    package func get(_ queue: String) async throws(IvyError) -> AMQPDelivery? {
        try shortString(queue, "the queue name")
        return try await perform { .get(queue: queue, $0) }
    }

    /// Starts a consumer with manual acks and returns its tag.
    ///
    /// - Parameters:
    ///   - prefetch: How many unacked deliveries the broker lets this consumer hold
    ///     (`basic.qos`, per consumer); 0 for no limit.
    ///   - onDelivery: Called on the connection's thread for each message, in order; it must not
    ///     block. Settle each with ``ack(deliveryTag:)`` or ``reject(deliveryTag:requeue:)``.
    ///   - onBurstEnd: Called on the connection's thread after deliveries that arrived together
    ///     were all handed to `onDelivery`, so that a taker can wait for a batch, not the first.
    ///   - onCancel: Called on the connection's thread when the broker cancels the consumer
    ///     (its queue was deleted). Not called after ``cancel(consumerTag:)``, nor when the
    ///     connection ends (`onClosed` says that).
    /// - Throws: ``IvyError/Code/commandFailed`` when the queue does not exist.
    package func consume(
        _ queue: String, prefetch: Int, onDelivery: @escaping @Sendable (AMQPDelivery) -> Void,
        onBurstEnd: @escaping @Sendable () -> Void = {}, onCancel: @escaping @Sendable () -> Void = {}
    ) async throws(IvyError) -> String {
        try shortString(queue, "the queue name")
        guard (0...Int(UInt16.max)).contains(prefetch) else {
            throw IvyError.invalidConfiguration("prefetch", mustBe: "from 0 to 65535", got: prefetch)
        }
        let number = consumerCount.add(1, ordering: .relaxed).newValue
        let consumer = AMQPCommand.Consumer(
            tag: "\(name.prefix(200))-\(generation)-\(number)", queue: queue, prefetch: UInt16(prefetch),
            onDelivery: onDelivery, onBurstEnd: onBurstEnd, onCancel: onCancel)
        return try await perform { .consume(consumer, $0) }
    }

    /// Stops a consumer; returns once the broker confirmed. Deliveries made before that still
    /// need settling. An unknown tag is no error.
    package func cancel(consumerTag: String) async throws(IvyError) {
        try await perform { .cancel(consumerTag: consumerTag, $0) }
    }

    /// Acknowledges a delivery this connection made; returns once the ack is written (the
    /// broker does not answer acks).
    ///
    /// - Throws: ``IvyError/Code/reservationLost`` when the connection is gone (the broker will
    ///   deliver the message again) or the tag is not waiting for an ack here.
    package func ack(deliveryTag: UInt64) async throws(IvyError) {
        try await perform { .ack(deliveryTag: deliveryTag, $0) }
    }

    /// Rejects a delivery this connection made: back to its queue with `requeue` (a quorum
    /// queue counts it as a delivery), else dropped or dead-lettered as the queue says.
    ///
    /// - Throws: ``IvyError/Code/reservationLost`` as ``ack(deliveryTag:)`` does.
    package func reject(deliveryTag: UInt64, requeue: Bool) async throws(IvyError) {
        try await perform { .reject(deliveryTag: deliveryTag, requeue: requeue, $0) }
    }

    // MARK: Closing

    /// Closes the connection politely and ends its thread; returns when both are done.
    ///
    /// Acks and rejects handed over before still go out; every other pending command, and every
    /// publish not yet confirmed, fails with ``IvyError/Code/closed``. `onClosed` is not called.
    package func close() async {
        inbox.close()
        await inbox.waitUntilFinished()
    }

    // MARK: Helpers

    /// RabbitMQ's default `max_message_size` (128 MiB); a larger body would close channel 1.
    private static let largestBody = 128 << 20

    /// Hands a command to the thread and awaits its completion.
    private func perform<Value: Sendable>(
        _ command: (@escaping AMQPCommand.Completion<Value>) -> AMQPCommand
    ) async throws(IvyError) -> Value {
        try await completing { inbox.submit(command($0)) }
    }

    /// Starts an operation that reports through a completion, and awaits it.
    private func completing<Value: Sendable>(
        _ start: (@escaping AMQPCommand.Completion<Value>) -> Void
    ) async throws(IvyError) -> Value {
        let result: Result<Value, IvyError> = await withCheckedContinuation { continuation in
            start { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// AMQP's short strings (names, routing keys, message ids) hold at most 255 bytes.
    private func shortString(_ value: String, _ what: String) throws(IvyError) {
        let count = value.utf8.count
        guard count <= 255 else { throw commandFailed("\(what) is \(count) bytes; AMQP allows 255") }
    }

    private func commandFailed(_ detail: String) -> IvyError {
        IvyError(.commandFailed, endpoint: endpoint, detail: detail)
    }
}
