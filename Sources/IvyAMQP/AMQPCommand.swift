// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

/// Work handed to a connection's thread, each with a completion called exactly once: on that
/// thread, or on the caller's when the connection has already ended.
enum AMQPCommand: Sendable {
    typealias Completion<Value> = @Sendable (Result<Value, IvyError>) -> Void

    /// A `basic.publish` and what its confirm completes.
    struct Publish: Sendable {
        var exchange: String
        var routingKey: String
        var body: [UInt8]
        var headers: [String: AMQPHeaderValue]
        var messageID: String
        var persistent: Bool
        /// When it fails unless the broker confirmed it (hand-over time plus the send deadline).
        var deadline: ContinuousClock.Instant
        var completion: Completion<Void>
    }

    /// A consumer to start, with its own tag (chosen by the client, so deliveries can never
    /// arrive before the thread knows whom they are for).
    struct Consumer: Sendable {
        var tag: String
        var queue: String
        var prefetch: UInt16
        /// Called on the connection's thread for each delivery; must return quickly.
        var onDelivery: @Sendable (AMQPDelivery) -> Void
        /// Called on the connection's thread after a turn of reading that brought deliveries:
        /// those that arrived together have all been handed over.
        var onBurstEnd: @Sendable () -> Void
        /// Called on the connection's thread when the broker cancels the consumer (its queue
        /// was deleted); not after ``AMQPConnection/cancel(consumerTag:)`` or a lost connection.
        var onCancel: @Sendable () -> Void
    }

    case publish(Publish)
    case declareQueue(
        name: String, durable: Bool, arguments: [String: AMQPHeaderValue], passive: Bool,
        Completion<AMQPConnection.QueueCounts>)
    case purgeQueue(String, Completion<Int>)
    case deleteQueue(String, Completion<Int>)
    case get(queue: String, Completion<AMQPDelivery?>)
    case consume(Consumer, Completion<String>)
    case cancel(consumerTag: String, Completion<Void>)
    case ack(deliveryTag: UInt64, Completion<Void>)
    case reject(deliveryTag: UInt64, requeue: Bool, Completion<Void>)

    /// Completes the command with `error`; an ack or reject with
    /// ``IvyError/Code/reservationLost``, since its delivery can no longer be settled there.
    func fail(_ error: IvyError) {
        switch self {
        case .publish(let publish): publish.completion(.failure(error))
        case .declareQueue(_, _, _, _, let completion): completion(.failure(error))
        case .purgeQueue(_, let completion), .deleteQueue(_, let completion): completion(.failure(error))
        case .get(_, let completion): completion(.failure(error))
        case .consume(_, let completion): completion(.failure(error))
        case .cancel(_, let completion): completion(.failure(error))
        case .ack(_, let completion), .reject(_, _, let completion):
            completion(.failure(Self.settlementFailed(error)))
        }
    }

    /// `error` as the failure of an ack or reject whose connection is gone.
    static func settlementFailed(_ error: IvyError) -> IvyError {
        guard error.code != .reservationLost else { return error }
        let cause = error.detail.map { "\(error.code): \($0)" } ?? "\(error.code)"
        return IvyError(
            .reservationLost, endpoint: error.endpoint,
            detail:
                "the connection that received the delivery is gone (\(cause)); the broker will deliver it again"
        )
    }
}
