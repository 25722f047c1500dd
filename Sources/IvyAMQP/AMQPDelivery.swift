// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A message the broker handed to a consumer (`basic.deliver`) or to `basic.get`, not yet
/// acknowledged.
///
/// Its ``deliveryTag`` means something only on the channel of the connection that received it:
/// ``generation`` says which connection that was, so that a backend that has replaced a
/// connection sends the ack to the one that can still settle it, or reports the reservation
/// lost when that one is gone.
package struct AMQPDelivery: Sendable {
    /// The consumer it was delivered to; nil for `basic.get`.
    package var consumerTag: String?
    /// The broker's number for it on its channel, for ``AMQPConnection/ack(deliveryTag:)``.
    package var deliveryTag: UInt64
    /// The ``AMQPConnection/generation`` of the connection that received it.
    package var generation: UInt64
    /// Whether the broker delivered it before (to anyone) without an ack.
    package var redelivered: Bool
    /// The queue it came from, as the consumer or `basic.get` named it.
    package var queue: String
    /// The exchange it was published to (`""`: the default exchange).
    package var exchange: String
    /// The routing key it was published with.
    package var routingKey: String
    /// The `message_id` property, when the publisher set one.
    package var messageID: String?
    package var body: [UInt8]
    /// The headers table's strings, integers and booleans.
    package var headers: [String: AMQPHeaderValue]

    /// How many times a quorum queue delivered it before, from its `x-delivery-count` header:
    /// nil on classic queues, which do not count. A first delivery has none to a consumer and 0
    /// to `basic.get` (RabbitMQ 3.10); each reject with requeue, and each return of an unacked
    /// delivery when its channel closes, adds one.
    package var deliveryCount: Int? {
        headers["x-delivery-count"]?.integer.flatMap { Int(exactly: $0) }
    }

    package init(
        consumerTag: String?, deliveryTag: UInt64, generation: UInt64, redelivered: Bool, queue: String,
        exchange: String, routingKey: String, messageID: String?, body: [UInt8],
        headers: [String: AMQPHeaderValue]
    ) {
        self.consumerTag = consumerTag
        self.deliveryTag = deliveryTag
        self.generation = generation
        self.redelivered = redelivered
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
        self.messageID = messageID
        self.body = body
        self.headers = headers
    }
}
