// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A value in an AMQP field table: a message's headers or a queue's arguments.
///
/// AMQP tables hold many more kinds (decimals, floats, timestamps, nested tables, arrays); Ivy
/// writes only these three, which are all RabbitMQ's queue arguments (`x-queue-type`,
/// `x-message-ttl`, `x-dead-letter-routing-key` …) and Ivy's headers need. Reading, it keeps
/// strings, integers of every width and booleans, and skips the rest.
///
/// ```swift
/// let arguments: [String: AMQPHeaderValue] = ["x-queue-type": "quorum", "x-message-ttl": 5000]
/// ```
package enum AMQPHeaderValue: Sendable, Hashable, CustomStringConvertible {
    /// Written as a long string (`S`).
    case string(String)
    /// Written as a signed 64-bit integer (`l`); read from any integer width that fits.
    case integer(Int64)
    /// Written as a boolean (`t`).
    case bool(Bool)

    package var string: String? {
        if case .string(let value) = self { value } else { nil }
    }

    package var integer: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    package var bool: Bool? {
        if case .bool(let value) = self { value } else { nil }
    }

    package var description: String {
        switch self {
        case .string(let value): "\"\(value)\""
        case .integer(let value): String(value)
        case .bool(let value): String(value)
        }
    }
}

extension AMQPHeaderValue: ExpressibleByStringLiteral {
    package init(stringLiteral value: String) { self = .string(value) }
}

extension AMQPHeaderValue: ExpressibleByIntegerLiteral {
    package init(integerLiteral value: Int64) { self = .integer(value) }
}

extension AMQPHeaderValue: ExpressibleByBooleanLiteral {
    package init(booleanLiteral value: Bool) { self = .bool(value) }
}
