// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Lets something happen at most once per interval: a warning that every request could repeat.
package final class Throttle: Sendable {
    private let interval: Duration
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    package init(every interval: Duration) {
        self.interval = interval
    }

    /// True at most once per interval; the first call always is.
    package func allows() -> Bool {
        let now = ContinuousClock.now
        return last.withLock { last in
            if let previous = last, now - previous < interval { return false }
            last = now
            return true
        }
    }
}
