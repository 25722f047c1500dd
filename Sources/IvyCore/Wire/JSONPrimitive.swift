// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Scalars written and read by hand: most task arguments and results are one of these, and
/// skipping `JSONEncoder`/`JSONDecoder` for them takes a large share off each call.
protocol JSONPrimitive {
    func writeJSON(into writer: inout JSONWriter)
    /// The value a JSON token holds, or nil when it is not exactly this type.
    static func readJSON(_ token: ArraySlice<UInt8>) -> Self?
}

extension Int: JSONPrimitive {
    func writeJSON(into writer: inout JSONWriter) { writer.integer(self) }
    static func readJSON(_ token: ArraySlice<UInt8>) -> Int? {
        // Foundation's decoder reads 5.0 and 5e0 as Int too; those take the slow path.
        guard let first = token.first, first == UInt8(ascii: "-") || (0x30...0x39).contains(first),
            token.count <= 20
        else { return nil }
        return Int(String(decoding: token, as: UTF8.self))
    }
}

extension String: JSONPrimitive {
    func writeJSON(into writer: inout JSONWriter) { writer.string(self) }
    static func readJSON(_ token: ArraySlice<UInt8>) -> String? {
        guard token.first == UInt8(ascii: "\"") else { return nil }
        var scanner = JSONObjectReader.Scanner(bytes: Array(token))
        return try? scanner.string()
    }
}

extension Bool: JSONPrimitive {
    func writeJSON(into writer: inout JSONWriter) { writer.bool(self) }
    static func readJSON(_ token: ArraySlice<UInt8>) -> Bool? {
        if token.elementsEqual("true".utf8) { return true }
        if token.elementsEqual("false".utf8) { return false }
        return nil
    }
}

extension JSONWriter {
    /// Writes a value: scalars by hand, anything else through `JSONEncoder`.
    mutating func value<Value: Encodable>(_ value: Value, encoder: @autoclosure () -> JSONEncoderBox) throws {
        if let primitive = value as? any JSONPrimitive {
            primitive.writeJSON(into: &self)
        } else {
            raw(try encoder().encode(value))
        }
    }
}

/// A lazily made `JSONEncoder`, shared by the values of one message.
final class JSONEncoderBox {
    private var encoder: JSONEncoder?
    func encode<Value: Encodable>(_ value: Value) throws -> [UInt8] {
        let encoder = self.encoder ?? JSONEncoder()
        self.encoder = encoder
        return Array(try encoder.encode(value))
    }
}
