// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

package import IvyCore

/// One reply from Redis, copied out of hiredis' memory.
package enum RedisReply: Sendable, Hashable {
    case string([UInt8])
    case status(String)
    case integer(Int)
    case array([RedisReply])
    case null
    /// An error reply, such as `WRONGTYPE …` or `NOSCRIPT …`.
    case error(String)

    package var bytes: [UInt8]? {
        switch self {
        case .string(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    package var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    package var integer: Int? {
        switch self {
        case .integer(let value): value
        case .string(let bytes): Int(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    package var array: [RedisReply]? {
        if case .array(let elements) = self { elements } else { nil }
    }

    package var isNull: Bool { self == .null }

    /// The server's message, when this is an error reply.
    package var errorMessage: String? {
        if case .error(let message) = self { message } else { nil }
    }

    /// The reply itself, or a `IvyError/Code/commandFailed` carrying the server's message.
    package func checked(endpoint: String, command: String) throws(IvyError) -> RedisReply {
        if case .error(let message) = self {
            throw IvyError(.commandFailed, endpoint: endpoint, detail: "\(command): \(message)")
        }
        return self
    }
}

/// A command, kept in the Redis protocol (RESP) as it is built: sending it is one copy into the
/// connection's buffer, with no array per argument.
package struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    /// The command's name, for logs and errors.
    package let name: String
    /// Every argument, the name first, each a RESP bulk string.
    private(set) var encodedArguments: [UInt8]
    /// How many arguments, the name included.
    private(set) var argumentCount: Int

    package init(_ name: String, _ arguments: any RedisArgument...) {
        self.name = name
        encodedArguments = []
        encodedArguments.reserveCapacity(64)
        argumentCount = 0
        append(name)
        for argument in arguments { append(argument) }
    }

    /// A command from its arguments as bytes, the name first (at least one).
    package init(arguments: [[UInt8]]) {
        precondition(!arguments.isEmpty, "a command needs a name")
        self.init(String(decoding: arguments[0], as: UTF8.self))
        for argument in arguments.dropFirst() { append(argument) }
    }

    package mutating func append(_ argument: any RedisArgument) {
        argument.appendBulk(to: &encodedArguments)
        argumentCount += 1
    }

    /// The RESP array header, `*<count>\r\n`, that goes before ``encodedArguments``.
    var header: [UInt8] {
        var header: [UInt8] = [UInt8(ascii: "*")]
        Self.appendDecimal(argumentCount, to: &header)
        header += [13, 10]
        return header
    }

    /// The command name only: arguments may hold secrets or message bodies.
    package var description: String { name }

    /// Appends `bytes` as a RESP bulk string: `$<length>\r\n<bytes>\r\n`.
    package static func appendBulk(_ bytes: UnsafeRawBufferPointer, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "$"))
        appendDecimal(bytes.count, to: &buffer)
        buffer.append(13)
        buffer.append(10)
        buffer.append(contentsOf: bytes)
        buffer.append(13)
        buffer.append(10)
    }

    static func appendDecimal(_ value: Int, to buffer: inout [UInt8]) {
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { digits in
            repeat {
                digits[19 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            buffer.append(contentsOf: digits[(20 - count)...])
        }
    }
}

/// A value that can be a command argument.
package protocol RedisArgument: Sendable {
    /// Appends the value to `buffer` as a RESP bulk string (see ``RedisCommand/appendBulk(_:to:)``).
    func appendBulk(to buffer: inout [UInt8])
}

extension String: RedisArgument {
    package func appendBulk(to buffer: inout [UInt8]) {
        if let done: Void = utf8.withContiguousStorageIfAvailable({
            RedisCommand.appendBulk(UnsafeRawBufferPointer($0), to: &buffer)
        }) {
            return done
        }
        Array(utf8).appendBulk(to: &buffer)
    }
}

extension Int: RedisArgument {
    package func appendBulk(to buffer: inout [UInt8]) {
        var digits: [UInt8] = []
        RedisCommand.appendDecimal(self, to: &digits)
        digits.appendBulk(to: &buffer)
    }
}

extension Array: RedisArgument where Element == UInt8 {
    package func appendBulk(to buffer: inout [UInt8]) {
        withUnsafeBytes { RedisCommand.appendBulk($0, to: &buffer) }
    }
}
