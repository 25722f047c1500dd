// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CRabbitMQ

extension amqp_bytes_t {
    /// The bytes as UTF-8 text (invalid sequences replaced); empty for no bytes.
    var string: String {
        guard len > 0, let bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: len), as: UTF8.self)
    }

    /// A copy of the bytes.
    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }
}

/// Calls `body` with `text`'s UTF-8 as `amqp_bytes_t`, valid only inside `body`.
func withAMQPBytes<Result>(_ text: String, _ body: (amqp_bytes_t) throws -> Result) rethrows -> Result {
    var text = text
    return try text.withUTF8 { utf8 in
        try body(amqp_bytes_t(len: utf8.count, bytes: UnsafeMutableRawPointer(mutating: utf8.baseAddress)))
    }
}

/// Calls `body` with `bytes` as `amqp_bytes_t`, valid only inside `body`.
func withAMQPBytes<Result>(_ bytes: [UInt8], _ body: (amqp_bytes_t) throws -> Result) rethrows -> Result {
    try bytes.withUnsafeBytes { raw in
        try body(amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)))
    }
}
