// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// The name of a queue: what a task's messages travel on and what a worker serves.
///
/// One to 200 ASCII letters, digits, `.`, `_`, `-` or `:`, so that the same name is valid on
/// every broker (IronMQ queue names, AMQP queue names, Redis keys with a `{queue}` hash tag)
/// and cannot be confused with a ``ChannelName``.
///
/// ```swift
/// let queue: QueueName = "testpackage"            // a literal: an invalid one traps
/// let fromConfig = try QueueName(environmentValue)  // a value from outside throws instead
/// ```
public struct QueueName: Sendable, Hashable, Comparable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    /// The name as the broker sees it.
    public let rawValue: String

    /// Checks `name`.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the rule it breaks.
    public init(_ name: String) throws(IvyError) {
        guard Self.isValid(name) else {
            throw IvyError.invalidConfiguration(
                "a queue name", mustBe: "1 to 200 ASCII letters, digits, '.', '_', '-' or ':'",
                got: "\"\(name.prefix(64))\"")
        }
        rawValue = name
    }

    /// A name written in the source; an invalid literal is a programmer error and traps.
    public init(stringLiteral name: String) {
        precondition(Self.isValid(name), "invalid queue name \"\(name)\"")
        rawValue = name
    }

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    static func isValid(_ name: String) -> Bool {
        let bytes = name.utf8
        return (1...200).contains(bytes.count)
            && bytes.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
                    UInt8(ascii: "-"), UInt8(ascii: ":"):
                    true
                default: false
                }
            }
    }
}
