// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CRabbitMQ

/// Converts between Swift dictionaries and rabbitmq-c's `amqp_table_t`.
///
/// An encoded table points into memory that lives only for the closure it is handed to, so
/// rabbitmq-c must encode it onto the wire (or copy it) before the closure returns, which its
/// send functions do.
enum AMQPFieldTable {
    /// Calls `body` with `values` as a table whose keys and strings point into one buffer that
    /// lives until `body` returns. Entries are sorted by key, so the same dictionary always
    /// makes the same bytes.
    ///
    /// - Parameter tables: Nested tables to add, each already encoded and valid during `body`.
    static func withEncoded<Result>(
        _ values: [String: AMQPHeaderValue], tables: [String: amqp_table_t] = [:],
        _ body: (amqp_table_t) throws -> Result
    ) rethrows -> Result {
        guard !values.isEmpty || !tables.isEmpty else {
            return try body(amqp_table_t(num_entries: 0, entries: nil))
        }
        let pairs = values.sorted { $0.key < $1.key }
        let nested = tables.sorted { $0.key < $1.key }
        var storage: [UInt8] = []
        var keys: [Range<Int>] = []
        var strings: [Range<Int>] = []
        for (key, value) in pairs {
            keys.append(storage.count..<(storage.count + key.utf8.count))
            storage.append(contentsOf: key.utf8)
            if case .string(let text) = value {
                strings.append(storage.count..<(storage.count + text.utf8.count))
                storage.append(contentsOf: text.utf8)
            } else {
                strings.append(0..<0)
            }
        }
        for (key, _) in nested {
            keys.append(storage.count..<(storage.count + key.utf8.count))
            storage.append(contentsOf: key.utf8)
        }
        return try storage.withUnsafeMutableBytes { raw in
            func bytes(_ range: Range<Int>) -> amqp_bytes_t {
                amqp_bytes_t(
                    len: range.count,
                    bytes: range.isEmpty ? nil : raw.baseAddress.map { $0 + range.lowerBound })
            }
            var entries: [amqp_table_entry_t] = []
            entries.reserveCapacity(pairs.count + nested.count)
            for (index, (_, value)) in pairs.enumerated() {
                var field = amqp_field_value_t()
                switch value {
                case .string:
                    field.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                    field.value.bytes = bytes(strings[index])
                case .integer(let number):
                    field.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
                    field.value.i64 = number
                case .bool(let flag):
                    field.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
                    field.value.boolean = flag ? 1 : 0
                }
                entries.append(amqp_table_entry_t(key: bytes(keys[index]), value: field))
            }
            for (index, (_, table)) in nested.enumerated() {
                var field = amqp_field_value_t()
                field.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
                field.value.table = table
                entries.append(amqp_table_entry_t(key: bytes(keys[pairs.count + index]), value: field))
            }
            return try entries.withUnsafeMutableBufferPointer { buffer in
                try body(amqp_table_t(num_entries: Int32(buffer.count), entries: buffer.baseAddress))
            }
        }
    }

    /// The strings, integers and booleans of a decoded table; other kinds are skipped, and so
    /// is an unsigned 64-bit value beyond `Int64.max`. Nothing in the table can trap.
    static func decode(_ table: amqp_table_t) -> [String: AMQPHeaderValue] {
        guard table.num_entries > 0, let entries = table.entries else { return [:] }
        var values: [String: AMQPHeaderValue] = [:]
        for entry in UnsafeBufferPointer(start: entries, count: Int(table.num_entries)) {
            let field = entry.value
            let value: AMQPHeaderValue? =
                switch UInt32(field.kind) {
                case AMQP_FIELD_KIND_UTF8.rawValue: .string(field.value.bytes.string)
                case AMQP_FIELD_KIND_BOOLEAN.rawValue: .bool(field.value.boolean != 0)
                case AMQP_FIELD_KIND_I8.rawValue: .integer(Int64(field.value.i8))
                case AMQP_FIELD_KIND_U8.rawValue: .integer(Int64(field.value.u8))
                case AMQP_FIELD_KIND_I16.rawValue: .integer(Int64(field.value.i16))
                case AMQP_FIELD_KIND_U16.rawValue: .integer(Int64(field.value.u16))
                case AMQP_FIELD_KIND_I32.rawValue: .integer(Int64(field.value.i32))
                case AMQP_FIELD_KIND_U32.rawValue: .integer(Int64(field.value.u32))
                case AMQP_FIELD_KIND_I64.rawValue: .integer(field.value.i64)
                case AMQP_FIELD_KIND_U64.rawValue: Int64(exactly: field.value.u64).map { .integer($0) }
                default: nil
                }
            if let value { values[entry.key.string] = value }
        }
        return values
    }
}
