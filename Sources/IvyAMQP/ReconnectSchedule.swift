// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// When the next connection attempt may start: not sooner than a minimum interval after the
/// last one, twice as long after each failure in a row up to a longest interval, with jitter so
/// that a fleet of workers that lost the same broker does not come back in one wave. No I/O:
/// the caller says what happened and when.
struct ReconnectSchedule: Sendable {
    /// The least time between two attempts.
    var minimumInterval: Duration
    /// The most time between two attempts, however many failed.
    var longestInterval: Duration
    /// Each interval is stretched by up to this fraction of itself, at random.
    var jitter: Double

    private var lastAttempt: ContinuousClock.Instant?
    private var failuresInARow = 0

    init(
        minimumInterval: Duration = .seconds(1), longestInterval: Duration = .seconds(30),
        jitter: Double = 0.25
    ) {
        self.minimumInterval = minimumInterval
        self.longestInterval = longestInterval
        self.jitter = jitter
    }

    /// When an attempt may start, given a random number in `0..<1` for the jitter.
    func nextAttempt(random: Double) -> ContinuousClock.Instant? {
        guard let lastAttempt else { return nil }
        var interval = minimumInterval
        for _ in 0..<min(failuresInARow, 16) where interval < longestInterval { interval *= 2 }
        interval = min(interval, longestInterval)
        return lastAttempt + interval * (1 + jitter * min(max(random, 0), 1))
    }

    /// An attempt started at `instant`.
    mutating func attempted(at instant: ContinuousClock.Instant) { lastAttempt = instant }

    /// The attempt connected: the next one waits only the minimum interval.
    mutating func succeeded() { failuresInARow = 0 }

    /// The attempt failed: the next one waits twice as long as this one did.
    mutating func failed() { failuresInARow += 1 }
}
