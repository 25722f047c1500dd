// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension Duration {
    /// Whole milliseconds, rounded down: what Redis commands and `poll` take.
    /// Saturates at `Int.min` and `Int.max` rather than trapping.
    package var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        let (whole, overflow) = Int(seconds).multipliedReportingOverflow(by: 1000)
        let (sum, carry) = whole.addingReportingOverflow(Int(attoseconds / 1_000_000_000_000_000))
        return overflow || carry ? (seconds < 0 ? .min : .max) : sum
    }
}
