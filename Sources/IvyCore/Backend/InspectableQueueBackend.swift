// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend that can show and manage what it holds: sizes, a peek, the dead letter (a
/// capability every shipped backend has, for operators' tools and tests).
///
/// A listing (``peek(_:count:)``, ``deadLetters(of:count:)``) may hold fewer than its `count`
/// although more are there, up to what the broker lists in one request (IronMQ: 100), and a
/// search by id may stop at a bound (``requeueDeadLetter(of:messageID:)``,
/// ``deleteDeadLetter(of:messageID:)``); a backend documents where. Moving and deleting many
/// are not capped: ``requeueDeadLetters(of:count:)`` and the purges take as many requests as
/// they need.
public protocol InspectableQueueBackend<Receipt>: QueueBackend {
    /// Whether ``size(of:)`` tells ready, delayed and reserved messages apart. A broker that
    /// reports one count (IronMQ) gives it as `ready`, with `delayed` and `reserved` 0.
    var distinguishesStates: Bool { get }
    /// Counts of a queue's messages by state.
    func size(of queue: QueueName) async throws -> QueueSize
    /// The next `count` ready messages, without reserving them; fewer when the broker lists
    /// fewer at once (IronMQ: 100).
    func peek(_ queue: QueueName, count: Int) async throws -> [QueuedMessage]
    /// Whether a peek leaves the queue's order as it was (true by default). A broker that can
    /// only look at a message by taking it and giving it back (AMQP) may put it at the back.
    var peekKeepsOrder: Bool { get }
    /// The oldest `count` dead-lettered messages of a queue; fewer when the broker lists fewer at
    /// once (IronMQ: those among the first 100 messages of the dead-letter queue).
    func deadLetters(of queue: QueueName, count: Int) async throws -> [DeadLetter]
    /// Moves up to `count` dead letters back to the queue, oldest first; returns how many moved.
    func requeueDeadLetters(of queue: QueueName, count: Int) async throws -> Int
    /// Moves the one dead letter of `queue` whose ``DeadLetter/messageID`` is `messageID` (as
    /// ``deadLetters(of:count:)`` lists it) back to the queue, where it waits behind the messages
    /// already there, its delivery count started afresh; the others stay where they are.
    ///
    /// A broker that can only search by taking dead letters and giving them back may bound the
    /// search (AMQP looks at 10,000 at most, IronMQ at 500): an id past the bound is reported as
    /// not found, with a warning in the backend's log that the search gave up.
    ///
    /// - Returns: True when it was found and moved; false when no dead letter of `queue` has
    ///   that id, or none the search reached (then nothing changed). Should several have it,
    ///   the oldest moves.
    func requeueDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool
    /// Deletes the one dead letter of `queue` whose ``DeadLetter/messageID`` is `messageID` (as
    /// ``deadLetters(of:count:)`` lists it), leaving the others where they are: for a letter
    /// that should never run, where ``purgeDeadLetters(of:)`` would take the others too.
    ///
    /// The search is the one ``requeueDeadLetter(of:messageID:)`` makes, bounded the same way
    /// (AMQP looks at 10,000 at most, IronMQ at 500): an id past the bound is reported as not
    /// found, with a warning in the backend's log that the search gave up.
    ///
    /// - Returns: True when it was found and deleted; false when no dead letter of `queue` has
    ///   that id, or none the search reached (then nothing changed). Should several have it,
    ///   the oldest goes.
    func deleteDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool
    /// Deletes every ready and delayed message of a queue; returns how many went.
    func purge(_ queue: QueueName) async throws -> Int
    /// Deletes a queue's dead letters; returns how many went.
    func purgeDeadLetters(of queue: QueueName) async throws -> Int
}

extension InspectableQueueBackend {
    public var distinguishesStates: Bool { true }
    public var peekKeepsOrder: Bool { true }
}

extension InspectableQueueBackend {
    /// The sizes of `queues` that the backend tells within `limit` (asked all at once), in the
    /// order of `queues`: a broker that does not answer costs a scrape or a dashboard's sample
    /// that much, not a hang. A queue whose size failed or came late is left out.
    package func sizes(of queues: [QueueName], within limit: Duration) async -> [(QueueName, QueueSize)] {
        let sizes = await withTimeLimit(limit) {
            await withTaskGroup(of: (QueueName, QueueSize?).self) { group in
                for queue in queues { group.addTask { (queue, try? await size(of: queue)) } }
                var sizes: [QueueName: QueueSize] = [:]
                for await (queue, size) in group { sizes[queue] = size }
                return sizes
            }
        }
        return queues.compactMap { queue in sizes?[queue].map { (queue, $0) } }
    }
}
