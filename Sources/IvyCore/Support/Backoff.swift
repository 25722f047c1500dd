// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Waits between retries: `first` after the first failure, doubling with each further one up to
/// `longest`, each wait ±50 % at random so that many clients that lost the same server do not
/// come back in step.
package struct Backoff: Sendable {
    package let first: Duration
    package let longest: Duration

    package init(first: Duration, longest: Duration) {
        self.first = first
        self.longest = longest
    }

    /// How long to wait after `failures` consecutive failed tries (at least 1) before the next.
    package func delay(afterFailures failures: Int) -> Duration {
        delayWithoutJitter(afterFailures: failures) * Double.random(in: 0.5...1.5)
    }

    /// ``delay(afterFailures:)`` before its jitter.
    package func delayWithoutJitter(afterFailures failures: Int) -> Duration {
        let doublings = min(max(failures, 1) - 1, 16)
        return min(first * (1 << doublings), longest)
    }
}
