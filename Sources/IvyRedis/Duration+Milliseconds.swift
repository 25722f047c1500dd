// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension Duration {
    /// Whole milliseconds, rounded down: what Redis commands and `poll` take.
    package var wholeMilliseconds: Int {
        Int(components.seconds) * 1000 + Int(components.attoseconds / 1_000_000_000_000_000)
    }
}
