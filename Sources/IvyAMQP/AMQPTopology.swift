// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

/// The queues one Ivy queue is made of on RabbitMQ, and the headers Ivy reads and writes
/// (PROTOCOL.md §9). Every queue is durable and of the URL's `queue_type`; messages go through
/// the default exchange, routed by queue name.
///
/// - `<queue>`: the work queue, where sends go and workers consume.
/// - `<queue>.dead`: dead letters, each with the reason and its queue in headers.
/// - `<queue>.delay.<ms>`: one per rung of a fixed ladder of delays (100 ms, 200 ms, 500 ms,
///   1 s, 2 s, 5 s … 500,000 s); a message waits there for the rung's `x-message-ttl`, then the
///   broker dead-letters it back into `<queue>`. A delay is rounded up to the next rung, so a
///   queue has at most 21 of them, all known, and each holds messages of one TTL, which RabbitMQ
///   expires in order. They have no `x-expires`: an unused queue would go with its messages.
/// - `<queue>.paused`: a control queue; the queue is paused while it holds a message.
struct AMQPTopology: Sendable {
    let queueType: AMQPConfiguration.QueueType

    /// How many deliveries a message had before it was moved (released, delayed, expired):
    /// RabbitMQ counts a moved copy from zero.
    static let deliveriesHeader = "x-ivy-deliveries"
    /// Dead letters: why, from which queue, after how many deliveries, when (ms since 1970).
    static let reasonHeader = "x-ivy-reason"
    static let queueHeader = "x-ivy-queue"
    static let deadLetteredAtHeader = "x-ivy-dead-lettered-at"

    /// The ladder's rungs in milliseconds: 1, 2 and 5 times each power of ten from 100 ms.
    static let rungs: [Int64] = (2...8).flatMap { power -> [Int64] in
        var scale: Int64 = 1
        for _ in 0..<power { scale *= 10 }
        return [scale, 2 * scale, 5 * scale]
    }

    /// A reason is cut to this many UTF-8 bytes, so that the headers fit in one frame.
    static let longestReason = 8 << 10

    static func dead(_ queue: QueueName) -> String { queue.rawValue + ".dead" }

    static func paused(_ queue: QueueName) -> String { queue.rawValue + ".paused" }

    static func delay(_ queue: QueueName, rung: Int64) -> String { "\(queue.rawValue).delay.\(rung)" }

    /// The shortest rung at least `delay` long, or the longest rung.
    static func rung(for delay: Duration) -> Int64 {
        let milliseconds = delay.wholeMilliseconds
        return rungs.first { $0 >= milliseconds } ?? rungs[rungs.count - 1]
    }

    /// For a send that runs later: the longest rung no longer than `delay`, or the shortest
    /// rung. The message so comes back no later than its due time (but for a delay under the
    /// shortest rung, at most 100 ms late), usually early; the worker that receives it early
    /// sends it again with the rest of the delay (PROTOCOL.md §4), each time on a shorter rung.
    static func sendRung(for delay: Duration) -> Int64 {
        let milliseconds = delay.wholeMilliseconds
        return rungs.last { $0 <= milliseconds } ?? rungs[0]
    }

    /// The arguments of the dead-letter queue (and the base of the others).
    var queueArguments: [String: AMQPHeaderValue] { ["x-queue-type": .string(queueType.rawValue)] }

    /// The work queue's: a message the broker itself drops (past a quorum queue's delivery limit,
    /// which RabbitMQ 4 sets to 20 by default) goes to the dead-letter queue, not away.
    func workQueueArguments(for queue: QueueName) -> [String: AMQPHeaderValue] {
        var arguments = queueArguments
        arguments["x-dead-letter-exchange"] = ""
        arguments["x-dead-letter-routing-key"] = .string(Self.dead(queue))
        return arguments
    }

    /// A delay rung's arguments: its TTL, and where an expired message goes. A quorum queue
    /// dead-letters at least once only when it also refuses publishes when full.
    func delayArguments(for queue: QueueName, rung: Int64) -> [String: AMQPHeaderValue] {
        var arguments = queueArguments
        arguments["x-message-ttl"] = .integer(rung)
        arguments["x-dead-letter-exchange"] = ""
        arguments["x-dead-letter-routing-key"] = .string(queue.rawValue)
        if queueType == .quorum {
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
        }
        return arguments
    }

    /// How many times a delivery has been delivered, this one included: the deliveries before
    /// its last move, plus the broker's own count since. A quorum queue counts returns exactly
    /// (`x-delivery-count`); a classic one only says that it delivered the message before.
    func deliveryCount(of delivery: AMQPDelivery) -> Int {
        let moved = delivery.headers[Self.deliveriesHeader]?.integer.flatMap { Int(exactly: $0) } ?? 0
        let returned =
            queueType == .quorum ? (delivery.deliveryCount ?? 0) : (delivery.redelivered ? 1 : 0)
        // Both come from headers anyone who can publish may write: saturate, never trap.
        let (sum, overflow) = max(moved, 0).addingReportingOverflow(max(returned, 0))
        return overflow || sum == .max ? .max : sum + 1
    }

    /// `reason` cut at a character boundary to at most ``longestReason`` bytes.
    static func clipped(_ reason: String) -> String {
        guard reason.utf8.count > longestReason else { return reason }
        var clipped = ""
        for character in reason {
            if clipped.utf8.count + character.utf8.count > longestReason - 3 { break }
            clipped.append(character)
        }
        return clipped + "…"
    }
}
