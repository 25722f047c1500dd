// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// One JSON value kept as its text, checked to be valid JSON.
///
/// The arguments and results of tasks called by name by code that does not know their types:
/// the `ivy` tool, bridges to other languages, handlers in other processes
/// (``TaskRegistry/registerUntyped(_:queue:retry:timeout:resultWanted:_:)``,
/// ``IvyClient/call(_:arguments:timeout:after:at:)``). It travels in `args` and `result` exactly as
/// written.
public struct RawJSON: Sendable, Hashable, CustomStringConvertible {
    /// The value's UTF-8 text, without surrounding whitespace.
    public let bytes: [UInt8]

    /// Checks that `text` is exactly one JSON value (surrounding whitespace is dropped).
    ///
    /// - Throws: ``IvyError/Code/argumentsUndecodable`` saying where the text stops being JSON.
    public init(validating text: some StringProtocol) throws(IvyError) {
        try self.init(validating: Array(text.utf8))
    }

    /// Checks that `bytes` are exactly one JSON value (surrounding whitespace is dropped).
    ///
    /// - Throws: ``IvyError/Code/argumentsUndecodable`` saying where the bytes stop being JSON.
    public init(validating bytes: [UInt8]) throws(IvyError) {
        var scanner = JSONObjectReader.Scanner(bytes: bytes)
        do {
            scanner.skipWhitespace()
            let start = scanner.position
            try scanner.skipValue()
            let end = scanner.position
            scanner.skipWhitespace()
            guard scanner.isAtEnd else { throw scanner.failure("unexpected text after the value") }
            self.bytes = start == 0 && end == bytes.count ? bytes : Array(bytes[start..<end])
        } catch {
            throw IvyError(.argumentsUndecodable, detail: "invalid JSON: \(error)")
        }
    }

    /// A token the scanner already validated.
    init(validated token: ArraySlice<UInt8>) {
        bytes = Array(token)
    }

    /// JSON `null`.
    public static let null = RawJSON(validated: ArraySlice("null".utf8))

    /// The value's text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public var description: String { text }
}

// At the top of `args` or `result` the text is copied as it is; nested in another Codable
// value it goes through Foundation's coders as a tree.
extension RawJSON: JSONPrimitive {
    func writeJSON(into writer: inout JSONWriter) { writer.raw(bytes) }
    static func readJSON(_ token: ArraySlice<UInt8>) -> RawJSON? { RawJSON(validated: token) }
}

extension RawJSON: Codable {
    public init(from decoder: any Decoder) throws {
        let tree = try JSONTree(from: decoder)
        bytes = Array(try JSONEncoder().encode(tree))
    }

    public func encode(to encoder: any Encoder) throws {
        try JSONDecoder().decode(JSONTree.self, from: Data(bytes)).encode(to: encoder)
    }
}

/// Any JSON value, for the coders' slow path.
private indirect enum JSONTree: Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONTree])
    case object([String: JSONTree])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONTree].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONTree].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
