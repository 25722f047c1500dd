// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// One queue of the memory backend: its ready, delayed, reserved and dead messages.
///
/// A plain value with no clock of its own: every method takes `now`, so the state machine is
/// the same whoever drives it.
struct MemoryQueue {
    struct Record {
        var id: String
        var body: [UInt8]
        var deliveryCount: Int
    }

    struct Reserved {
        var record: Record
        var expiresAt: ContinuousClock.Instant
    }

    private(set) var ready = FIFOBuffer<Record>()
    /// Sorted by the instant each message becomes visible.
    private(set) var delayed: [(visibleAt: ContinuousClock.Instant, record: Record)] = []
    private(set) var reserved: [UInt64: Reserved] = [:]
    var dead: [DeadLetter] = []
    /// No reservation expires before this; nil when none is held. May be early, never late.
    private var nextExpiry: ContinuousClock.Instant?
    private var nextToken: UInt64 = 0

    /// The next instant something becomes visible without a send: a delay ends or a
    /// reservation expires.
    var nextEventTime: ContinuousClock.Instant? {
        switch (delayed.first?.visibleAt, nextExpiry) {
        case (let a?, let b?): min(a, b)
        case (let a?, nil): a
        case (nil, let b?): b
        case (nil, nil): nil
        }
    }

    mutating func append(_ record: Record) {
        ready.append(record)
    }

    mutating func delay(_ record: Record, until visibleAt: ContinuousClock.Instant) {
        var low = 0
        var high = delayed.count
        while low < high {
            let middle = (low + high) / 2
            if delayed[middle].visibleAt <= visibleAt { low = middle + 1 } else { high = middle }
        }
        delayed.insert((visibleAt, record), at: low)
    }

    /// Makes due delayed messages and expired reservations ready again.
    mutating func promote(now: ContinuousClock.Instant) {
        let due = delayed.prefix { $0.visibleAt <= now }.count
        if due > 0 {
            for entry in delayed[..<due] { ready.append(entry.record) }
            delayed.removeFirst(due)
        }
        guard let expiry = nextExpiry, expiry <= now else { return }
        var soonest: ContinuousClock.Instant?
        var expired: [(token: UInt64, record: Record)] = []
        for (token, entry) in reserved {
            if entry.expiresAt <= now {
                expired.append((token, entry.record))
            } else {
                soonest = soonest.map { min($0, entry.expiresAt) } ?? entry.expiresAt
            }
        }
        // Tokens grow with time, so this keeps the expired messages in reservation order.
        for entry in expired.sorted(by: { $0.token < $1.token }) {
            reserved[entry.token] = nil
            ready.append(entry.record)
        }
        nextExpiry = soonest
    }

    /// Reserves up to `count` ready messages until `now + visibility`.
    mutating func take(count: Int, visibility: Duration, now: ContinuousClock.Instant) -> [(
        token: UInt64, record: Record
    )] {
        promote(now: now)
        guard !ready.isEmpty else { return [] }
        let expiresAt = now.advanced(by: visibility)
        var taken: [(token: UInt64, record: Record)] = []
        taken.reserveCapacity(min(count, ready.count))
        while taken.count < count, var record = ready.popFirst() {
            record.deliveryCount += 1
            nextToken += 1
            reserved[nextToken] = Reserved(record: record, expiresAt: expiresAt)
            taken.append((nextToken, record))
        }
        nextExpiry = nextExpiry.map { min($0, expiresAt) } ?? expiresAt
        return taken
    }

    /// Whether `token` names a live reservation; an expired one is made ready again.
    mutating func holds(_ token: UInt64, now: ContinuousClock.Instant) -> Bool {
        guard let entry = reserved[token] else { return false }
        guard entry.expiresAt > now else {
            promote(now: now)
            return false
        }
        return true
    }

    mutating func extend(_ token: UInt64, until expiresAt: ContinuousClock.Instant) {
        reserved[token]?.expiresAt = expiresAt
        // A shorter extension must bring the next expiry forward, or it would be missed.
        nextExpiry = nextExpiry.map { min($0, expiresAt) } ?? expiresAt
    }

    mutating func removeReservation(_ token: UInt64) -> Record? {
        reserved.removeValue(forKey: token)?.record
    }

    mutating func purgeReady() -> Int {
        let count = ready.count + delayed.count
        ready = FIFOBuffer()
        delayed.removeAll()
        return count
    }
}
