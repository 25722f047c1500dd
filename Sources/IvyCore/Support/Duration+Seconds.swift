// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension Duration {
    /// The duration in seconds, fractions included: what `Date`, `poll`-free timers and
    /// messages for people take.
    package var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
