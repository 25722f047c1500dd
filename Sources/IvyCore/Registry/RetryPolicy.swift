// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How often a failing task is tried and how long a worker waits between attempts.
///
/// A worker consults the policy after a retryable failure: ``delay(afterAttempt:using:)`` gives
/// the wait before the next attempt, or nil when the attempts are used up and the message goes
/// to the dead letter. With jitter the delay is drawn from the upper half of the computed
/// backoff ("equal jitter"), so retries from many workers spread out but never come early.
public struct RetryPolicy: Sendable, Hashable {
    /// The shape of the wait between attempts.
    public enum Backoff: Sendable, Hashable {
        /// Retry at once.
        case immediate
        /// The same wait every time.
        case fixed(Duration)
        /// `step × attempt`.
        case linear(step: Duration)
        /// `base × 2^(attempt-1)`, capped at `maximum`.
        case exponential(base: Duration, maximum: Duration)
    }

    /// Attempts in all, the first one included; 1 means no retry.
    public var maxAttempts: Int
    public var backoff: Backoff
    public var jitter: Bool

    public init(maxAttempts: Int, backoff: Backoff, jitter: Bool = false) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.jitter = jitter
    }

    /// The longest wait a policy gives, and the longest task timeout: 30 days.
    public static let longestDelay = Duration.seconds(30 * 86_400)

    /// Checks every value; ``TaskRegistry`` does when a task is registered.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the first field out of range.
    public func validate() throws(IvyError) {
        try IvyError.check("RetryPolicy.maxAttempts", maxAttempts, in: 1...1_000_000)
        let range = Duration.zero...Self.longestDelay
        switch backoff {
        case .immediate: break
        case .fixed(let delay): try IvyError.check("RetryPolicy.fixed delay", delay, in: range)
        case .linear(let step): try IvyError.check("RetryPolicy.linear step", step, in: range)
        case .exponential(let base, let maximum):
            try IvyError.check("RetryPolicy.exponential base", base, in: range)
            try IvyError.check("RetryPolicy.exponential maximum", maximum, in: range)
        }
    }

    /// One attempt, no retry.
    public static var none: Self { .init(maxAttempts: 1, backoff: .immediate) }

    /// The same `delay` between up to `maxAttempts` attempts.
    public static func fixed(_ delay: Duration = .seconds(1), maxAttempts: Int = 3) -> Self {
        .init(maxAttempts: maxAttempts, backoff: .fixed(delay))
    }

    /// Waits of `step`, `2 × step`, `3 × step`, … between up to `maxAttempts` attempts.
    public static func linear(_ step: Duration = .seconds(1), maxAttempts: Int = 5) -> Self {
        .init(maxAttempts: maxAttempts, backoff: .linear(step: step))
    }

    /// Waits of `base`, `2 × base`, `4 × base`, … (at most `maximum`), with jitter by default.
    public static func exponential(
        base: Duration = .milliseconds(500), maximum: Duration = .seconds(300), maxAttempts: Int = 10,
        jitter: Bool = true
    ) -> Self {
        .init(maxAttempts: maxAttempts, backoff: .exponential(base: base, maximum: maximum), jitter: jitter)
    }

    /// The wait before the attempt after `attempt` (1-based), or nil when no attempt is left.
    public func delay(afterAttempt attempt: Int) -> Duration? {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, using: &generator)
    }

    public func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator)
        -> Duration?
    {
        guard attempt < maxAttempts else { return nil }
        // Products are checked and every wait is capped at `longestDelay`, so no policy and no
        // attempt number (it comes from a message) can overflow a `Duration`.
        let wait: Duration
        switch backoff {
        case .immediate: wait = .zero
        case .fixed(let delay): wait = delay
        case .linear(let step): wait = Self.scaled(step, by: Int128(max(attempt, 1)))
        case .exponential(let base, let maximum):
            let exponent = min(max(attempt - 1, 0), 100)
            wait = min(Self.scaled(base, by: Int128(1) << exponent), maximum)
        }
        let capped = min(max(wait, .zero), Self.longestDelay)
        guard jitter, capped > .zero else { return capped }
        return capped / 2 + capped / 2 * Double.random(in: 0...1, using: &generator)
    }

    /// `duration × factor`, or ``longestDelay`` if that is longer or overflows.
    private static func scaled(_ duration: Duration, by factor: Int128) -> Duration {
        let (product, overflow) = duration.attoseconds.multipliedReportingOverflow(by: factor)
        return overflow || product > longestDelay.attoseconds ? longestDelay : Duration(attoseconds: product)
    }
}
