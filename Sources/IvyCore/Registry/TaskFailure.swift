// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// An error a task throws to name its failure and say whether a retry can help.
///
/// Any other error a task throws is reported under its type name and counts as retryable.
public struct TaskFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var message: String
    public var retryable: Bool

    public init(_ name: String, _ message: String, retryable: Bool = true) {
        self.name = name
        self.message = message
        self.retryable = retryable
    }

    public var description: String { "\(name): \(message)" }
}
