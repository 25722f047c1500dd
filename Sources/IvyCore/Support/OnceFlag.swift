// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// True for the first ``claim()`` alone, from whichever thread.
package final class OnceFlag: Sendable {
    private let claimed = Atomic(false)

    package init() {}

    /// Whether this call is the first.
    package func claim() -> Bool {
        claimed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    }
}
