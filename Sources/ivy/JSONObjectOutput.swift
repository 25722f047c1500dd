// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyCore

/// One JSON object for `--json`, written by hand so that the JSON values it carries (a task's
/// result, a message body) go out byte for byte: through Foundation's coders a big integer
/// would become a double and a repeated key would vanish.
struct JSONObjectOutput {
    private var writer = JSONWriter(capacity: 256)
    private var isEmpty = true

    init() {}

    mutating func add(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        writer.string(value)
    }

    mutating func add(_ name: String, _ value: Int?) {
        guard let value else { return }
        key(name)
        writer.integer(value)
    }

    /// A finite number with at most three decimals (milliseconds to the microsecond).
    mutating func add(_ name: String, milliseconds value: Double?) {
        guard let value, value.isFinite else { return }
        key(name)
        writer.raw(Array(String(format: "%.3f", value).utf8))
    }

    mutating func add(_ name: String, _ value: Bool?) {
        guard let value else { return }
        key(name)
        writer.raw(value ? "true" : "false")
    }

    mutating func add(_ name: String, raw value: RawJSON?) {
        guard let value else { return }
        key(name)
        writer.raw(value.bytes)
    }

    mutating func add(_ name: String, _ value: JSONObjectOutput?) {
        guard let value else { return }
        key(name)
        writer.raw(value.bytes)
    }

    mutating func add(_ name: String, _ values: [JSONObjectOutput]) {
        key(name)
        writer.raw("[")
        for (index, value) in values.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.raw(value.bytes)
        }
        writer.raw("]")
    }

    mutating func add(_ name: String, strings values: [String]?) {
        guard let values else { return }
        key(name)
        writer.raw("[")
        for (index, value) in values.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.string(value)
        }
        writer.raw("]")
    }

    /// The object's text.
    var bytes: [UInt8] { (isEmpty ? [UInt8(ascii: "{")] : writer.bytes) + [UInt8(ascii: "}")] }

    private mutating func key(_ name: String) {
        writer.raw(isEmpty ? "{" : ",")
        isEmpty = false
        writer.string(name)
        writer.raw(":")
    }
}
