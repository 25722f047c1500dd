// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

/// The publishes on a confirm-mode channel that wait for the broker's verdict, and which of
/// them each `basic.ack`, `basic.nack`, `basic.return` or passing deadline settles. No I/O: the
/// connection's thread feeds it what the broker says and completes what it hands back.
///
/// The broker numbers a channel's publishes 1, 2, 3 … from `confirm.select` on, and confirms
/// them by that number, singly or as "everything up to n" (`multiple`), in any order across
/// queues. A `basic.return` (a mandatory message no queue took) carries no number, only the
/// message's exchange, routing key and properties; it comes before that message's ack, so it
/// is matched to the oldest unsettled publish with the same ``ReturnKey``, and the ack that
/// follows finds nothing left.
struct PublisherConfirms<Token> {
    /// What a `basic.return` tells of the publish it is about.
    struct ReturnKey: Hashable {
        var exchange: String
        var routingKey: String
        var messageID: String
    }

    private struct Entry {
        let key: ReturnKey
        let deadline: ContinuousClock.Instant
        let token: Token
    }

    private var entries: [UInt64: Entry] = [:]
    /// Sequence numbers in publish order; settled ones are skipped when they reach the front.
    private var order = FIFOBuffer<UInt64>()
    /// Unsettled sequence numbers by what a return would say of them, oldest first.
    private var byKey: [ReturnKey: [UInt64]] = [:]
    /// The number the broker gives the next publish.
    private(set) var nextSequence: UInt64 = 1

    /// Publishes waiting for their confirm.
    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// Records a publish just written to the channel; returns its sequence number.
    @discardableResult
    mutating func published(_ key: ReturnKey, deadline: ContinuousClock.Instant, token: Token) -> UInt64 {
        let sequence = nextSequence
        nextSequence += 1
        entries[sequence] = Entry(key: key, deadline: deadline, token: token)
        order.append(sequence)
        byKey[key, default: []].append(sequence)
        return sequence
    }

    /// What a `basic.ack` or `basic.nack` settles: publish `tag`, or with `multiple` every
    /// publish up to `tag` (all of them for tag 0, as the spec has it). Numbers already settled
    /// (returned, expired) or never used settle nothing.
    mutating func settle(_ tag: UInt64, multiple: Bool) -> [Token] {
        guard multiple else { return remove(tag).map { [$0] } ?? [] }
        var settled: [Token] = []
        while let sequence = order.first, tag == 0 || sequence <= tag {
            _ = order.popFirst()
            if let token = remove(sequence) { settled.append(token) }
        }
        return settled
    }

    /// The publish a `basic.return` is about, if one is waiting.
    mutating func returned(_ key: ReturnKey) -> Token? {
        guard let sequence = byKey[key]?.first else { return nil }
        return remove(sequence)
    }

    /// The publishes whose deadline is at or before `now`.
    mutating func expired(at now: ContinuousClock.Instant) -> [Token] {
        var expired: [Token] = []
        // Deadlines grow with the sequence (each is its hand-over time plus the same limit),
        // so the search stops at the first one still running.
        while let sequence = order.first {
            guard let entry = entries[sequence] else {
                _ = order.popFirst()
                continue
            }
            guard entry.deadline <= now else { break }
            _ = order.popFirst()
            if let token = remove(sequence) { expired.append(token) }
        }
        return expired
    }

    /// The earliest deadline of a waiting publish.
    mutating func nextDeadline() -> ContinuousClock.Instant? {
        while let sequence = order.first {
            if let entry = entries[sequence] { return entry.deadline }
            _ = order.popFirst()
        }
        return nil
    }

    /// Forgets every waiting publish and returns them, oldest first.
    mutating func removeAll() -> [Token] {
        var all: [Token] = []
        while let sequence = order.popFirst() {
            if let token = remove(sequence) { all.append(token) }
        }
        return all
    }

    private mutating func remove(_ sequence: UInt64) -> Token? {
        guard let entry = entries.removeValue(forKey: sequence) else { return nil }
        if var sequences = byKey[entry.key], let index = sequences.firstIndex(of: sequence) {
            sequences.remove(at: index)
            byKey[entry.key] = sequences.isEmpty ? nil : sequences
        }
        return entry.token
    }
}
