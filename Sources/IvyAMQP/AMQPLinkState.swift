// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// What ``AMQPLink`` decides, without I/O: which connection a caller uses, when a new one is
/// opened, which one retires, and which loss is reported. Generic over the connection, so that
/// its tests need no broker.
///
/// One connection is current. A caller gets it while it lives and is younger than the recycle
/// interval; otherwise the first caller starts opening the next generation, no sooner than the
/// ``ReconnectSchedule`` allows, and every caller waits for that one attempt. A connection
/// older than the recycle interval is handed back to be retired (kept for its deliveries, then
/// closed); a dead one is reported lost once, whether the caller or the connection's own
/// `onClosed` notices first.
struct AMQPLinkState<Connection> {
    /// What a caller does.
    enum Decision {
        /// Use this connection.
        case use(Connection)
        /// Wait for the connection being opened; `open` says to start opening it first.
        case wait(open: (generation: UInt64, notBefore: ContinuousClock.Instant?)?)
        /// The link is closed.
        case closed
    }

    /// A request's decision and its side effects for the caller to carry out.
    struct Outcome {
        var decision: Decision
        /// A connection to retire: it was current and grew older than the recycle interval.
        var retired: (generation: UInt64, connection: Connection)?
        /// The generation of a current connection found dead, reported here only.
        var lost: UInt64?
    }

    private struct Current {
        var connection: Connection
        var generation: UInt64
        var openedAt: ContinuousClock.Instant
    }

    let recycleInterval: Duration
    var schedule: ReconnectSchedule
    /// The index of the node (of the configuration's `nodes`) that answered last.
    var preferredNode = 0
    private var current: Current?
    private var retiring: [UInt64: Connection] = [:]
    private var generation: UInt64 = 0
    private(set) var isOpening = false
    private(set) var isClosed = false

    init(recycleInterval: Duration, schedule: ReconnectSchedule = ReconnectSchedule()) {
        self.recycleInterval = recycleInterval
        self.schedule = schedule
    }

    /// A caller wants a connection at `now`; `isAlive` tells whether a connection still is, and
    /// `random` (in `0..<1`) jitters the wait before a reconnect.
    mutating func request(now: ContinuousClock.Instant, isAlive: (Connection) -> Bool, random: Double)
        -> Outcome
    {
        guard !isClosed else { return Outcome(decision: .closed) }
        var outcome = Outcome(decision: .closed)
        if let current {
            if !isAlive(current.connection) {
                outcome.lost = current.generation
                self.current = nil
            } else if recycleInterval > .zero && now - current.openedAt >= recycleInterval {
                retiring[current.generation] = current.connection
                outcome.retired = (current.generation, current.connection)
                self.current = nil
            } else {
                outcome.decision = .use(current.connection)
                return outcome
            }
        }
        if isOpening {
            outcome.decision = .wait(open: nil)
        } else {
            isOpening = true
            generation += 1
            outcome.decision = .wait(open: (generation, schedule.nextAttempt(random: random)))
        }
        return outcome
    }

    /// The current connection when a caller may use it as it is (alive, not due for recycling):
    /// the common case, decided without changing anything.
    func usable(now: ContinuousClock.Instant, isAlive: (Connection) -> Bool) -> Connection? {
        guard !isClosed, let current, isAlive(current.connection),
            recycleInterval == .zero || now - current.openedAt < recycleInterval
        else { return nil }
        return current.connection
    }

    /// An attempt to open a connection starts at `now`.
    mutating func attempting(at now: ContinuousClock.Instant) { schedule.attempted(at: now) }

    /// The attempt opened `connection` of `generation`; false when the link was closed meanwhile
    /// (the caller closes the connection).
    mutating func opened(_ connection: Connection, generation: UInt64, at now: ContinuousClock.Instant)
        -> Bool
    {
        isOpening = false
        schedule.succeeded()
        guard !isClosed else { return false }
        current = Current(connection: connection, generation: generation, openedAt: now)
        return true
    }

    /// Retires connection `generation` now, if it is current (the broker refuses what it
    /// sends); returns it for the caller to retire.
    mutating func replace(generation: UInt64) -> Connection? {
        guard let current, current.generation == generation else { return nil }
        retiring[generation] = current.connection
        self.current = nil
        return current.connection
    }

    /// The attempt failed: the next waits longer.
    mutating func openFailed() {
        isOpening = false
        schedule.failed()
    }

    /// Connection `generation` ended by itself; true when it was current and its loss not yet
    /// reported (the caller reports it).
    mutating func lost(generation: UInt64) -> Bool {
        retiring[generation] = nil
        guard current?.generation == generation else { return false }
        current = nil
        return true
    }

    /// The connection of `generation`, current or retiring, as long as it is there.
    func connection(generation: UInt64) -> Connection? {
        if let current, current.generation == generation { return current.connection }
        return retiring[generation]
    }

    /// The current connection's generation.
    var currentGeneration: UInt64? { current?.generation }

    /// A retired connection is closed now.
    mutating func closedRetired(generation: UInt64) { retiring[generation] = nil }

    /// Closes the link; returns the connections to close.
    mutating func close() -> [Connection] {
        isClosed = true
        defer {
            current = nil
            retiring = [:]
        }
        return (current.map { [$0.connection] } ?? []) + Array(retiring.values)
    }
}
