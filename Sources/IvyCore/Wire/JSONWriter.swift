// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Appends JSON text to a byte buffer.
///
/// The wire format keeps `args`, `options` and `result` as raw JSON, so messages are assembled
/// from pieces rather than through `JSONEncoder`; this writer escapes the string pieces.
package struct JSONWriter {
    package private(set) var bytes: [UInt8]

    package init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    package mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    package mutating func raw<Bytes: Sequence<UInt8>>(_ json: Bytes) {
        bytes.append(contentsOf: json)
    }

    package mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            // Copy runs that need no escaping in one go; most strings are a single run.
            var runStart = 0
            for (index, byte) in utf8.enumerated() where byte < 0x20 || byte == 0x22 || byte == 0x5C {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                escape(byte)
                runStart = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): raw("\\\"")
        case UInt8(ascii: "\\"): raw("\\\\")
        case UInt8(ascii: "\n"): raw("\\n")
        case UInt8(ascii: "\r"): raw("\\r")
        case UInt8(ascii: "\t"): raw("\\t")
        default:
            raw("\\u00")
            bytes.append(Self.hexDigits[Int(byte >> 4)])
            bytes.append(Self.hexDigits[Int(byte & 0xF)])
        }
    }

    package mutating func integer(_ value: Int) {
        guard value != 0 else {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        // Digits into a small stack buffer, most significant last, then reversed out.
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var count = 0
            while magnitude > 0 {
                digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            if value < 0 { bytes.append(UInt8(ascii: "-")) }
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(digits[index]) }
        }
    }

    /// Writes `"YYYY-MM-DDTHH:MM:SS.mmmZ"`.
    mutating func timestamp(_ date: Date) {
        bytes.append(UInt8(ascii: "\""))
        RFC3339.write(date, into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func bool(_ value: Bool) {
        value ? raw("true") : raw("false")
    }

    /// Writes `"key":`, preceded by a comma unless it is the object's first key.
    mutating func key(_ name: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}
