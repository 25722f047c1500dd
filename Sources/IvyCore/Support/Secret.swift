// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A credential or key that never prints: its descriptions are `***`.
public struct Secret: Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    ExpressibleByStringLiteral
{
    /// The secret itself; read it only where it is used.
    public let exposedValue: String

    public init(_ value: String) { exposedValue = value }
    public init(stringLiteral value: String) { exposedValue = value }

    public var description: String { "***" }
    public var debugDescription: String { "Secret(***)" }
}
