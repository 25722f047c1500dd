// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore

/// One reply from Redis, copied out of hiredis' memory.
public enum RedisReply: Sendable, Hashable {
    case string([UInt8])
    case status(String)
    case integer(Int)
    case array([RedisReply])
    case null
    /// An error reply, such as `WRONGTYPE …` or `NOSCRIPT …`.
    case error(String)

    public var bytes: [UInt8]? {
        switch self {
        case .string(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    public var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    public var integer: Int? {
        switch self {
        case .integer(let value): value
        case .string(let bytes): Int(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    public var array: [RedisReply]? {
        if case .array(let elements) = self { elements } else { nil }
    }

    public var isNull: Bool { self == .null }

    /// The server's message, when this is an error reply.
    public var errorMessage: String? {
        if case .error(let message) = self { message } else { nil }
    }

    /// The reply itself, or a ``IvyError/Code/commandFailed`` carrying the server's message.
    public func checked(endpoint: String, command: String) throws(IvyError) -> RedisReply {
        if case .error(let message) = self {
            throw IvyError(.commandFailed, endpoint: endpoint, detail: "\(command): \(message)")
        }
        return self
    }
}

/// A command's arguments as bytes.
public struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    public var arguments: [[UInt8]]

    public init(_ name: String, _ arguments: any RedisArgument...) {
        self.arguments = [Array(name.utf8)] + arguments.map(\.redisBytes)
    }

    public init(arguments: [[UInt8]]) {
        self.arguments = arguments
    }

    public mutating func append(_ argument: any RedisArgument) {
        arguments.append(argument.redisBytes)
    }

    /// The command name only: arguments may hold secrets or message bodies.
    public var description: String { arguments.first.map { String(decoding: $0, as: UTF8.self) } ?? "" }
}

/// A value that can be a command argument.
public protocol RedisArgument: Sendable {
    var redisBytes: [UInt8] { get }
}

extension String: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
}

extension Int: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension Array: RedisArgument where Element == UInt8 {
    public var redisBytes: [UInt8] { self }
}
