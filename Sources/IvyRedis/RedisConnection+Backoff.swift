// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

extension RedisConnection {
    /// The shortest wait before reconnecting or retrying, without jitter.
    package static let firstRetryDelay: Duration = .milliseconds(50)
    /// The longest wait before reconnecting or retrying, without jitter.
    package static let longestRetryDelay: Duration = .milliseconds(500)

    /// How long to wait after `failures` consecutive failed tries (at least 1) before the next.
    ///
    /// 50 ms after the first failure, doubling with each further one up to 500 ms, each wait
    /// ±50 % at random: 25–75 ms first, never more than 750 ms. A restart of a second or two
    /// therefore costs at most about half a second more than it must (published results that
    /// nobody is subscribed to are lost meanwhile), while a server that stays down gets about
    /// two tries a second from each connection; the jitter keeps many clients that lost the
    /// same server from coming back in step.
    package static func retryDelay(afterFailures failures: Int) -> Duration {
        backoff.delay(afterFailures: failures)
    }

    /// `retryDelay(afterFailures:)` before its jitter.
    package static func retryDelayWithoutJitter(afterFailures failures: Int) -> Duration {
        backoff.delayWithoutJitter(afterFailures: failures)
    }

    private static let backoff = Backoff(first: firstRetryDelay, longest: longestRetryDelay)
}
