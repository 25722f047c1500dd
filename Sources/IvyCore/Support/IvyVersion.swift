// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// This release of Ivy for Swift.
public enum IvyVersion {
    /// Semantic version; `ivy --version` prints it.
    public static let current = "0.9.0"
}
