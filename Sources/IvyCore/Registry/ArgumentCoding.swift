// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Encodes a call's arguments as one JSON array, the wire format's `args`.
enum ArgumentEncoder {
    static func encode<each Argument: Encodable>(_ arguments: repeat each Argument) throws -> [UInt8] {
        var writer = JSONWriter(capacity: 64)
        let encoder = JSONEncoderBox()
        var first = true
        writer.raw("[")
        for argument in repeat each arguments {
            if !first { writer.raw(",") }
            first = false
            try writer.value(argument, encoder: encoder)
        }
        writer.raw("]")
        return writer.bytes
    }

    /// The `args` array of values already in JSON.
    static func encode(json arguments: [RawJSON]) -> [UInt8] {
        var writer = JSONWriter(capacity: 2 + arguments.reduce(0) { $0 + $1.bytes.count + 1 })
        writer.raw("[")
        for (index, argument) in arguments.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.raw(argument.bytes)
        }
        writer.raw("]")
        return writer.bytes
    }
}

/// Decodes `args` one element at a time, in parameter order.
///
/// Used as `body(repeat try decoder.next((each Argument).self))`, so the values go straight
/// into the call; a stored tuple of a value pack crashes the 6.3 compiler's IRGen.
final class ArgumentDecoder {
    private let json: [UInt8]
    private let elements: [Range<Int>]
    private var index = 0
    private var decoder: JSONDecoder?

    /// Splits `args` and checks that it has exactly `parameterCount` elements.
    init(_ args: ArraySlice<UInt8>, parameterCount: Int) throws {
        json = Array(args)
        elements = try JSONObjectReader.arrayElements(json)
        guard elements.count == parameterCount else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: [],
                    debugDescription: "\(elements.count) arguments for a task that takes \(parameterCount)"))
        }
    }

    func next<Value: Decodable>(_ type: Value.Type) throws -> Value {
        defer { index += 1 }
        do {
            return try ValueDecoding.decode(Value.self, from: json[elements[index]], decoder: &decoder)
        } catch {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: [], debugDescription: "argument \(index + 1): \(TaskRegistry.describe(error))"
                ))
        }
    }

    static func count<each Value>(_ types: repeat (each Value).Type) -> Int {
        var count = 0
        for _ in repeat each types { count += 1 }
        return count
    }
}

/// Decodes one JSON value: scalars by hand, anything else through `JSONDecoder`.
enum ValueDecoding {
    static func decode<Value: Decodable>(
        _ type: Value.Type, from token: ArraySlice<UInt8>, decoder: inout JSONDecoder?
    ) throws -> Value {
        if let primitive = Value.self as? any JSONPrimitive.Type,
            let value = primitive.readJSON(token) as? Value
        {
            return value
        }
        if decoder == nil { decoder = JSONDecoder() }
        do { return try decoder!.decode(Value.self, from: Data(token)) } catch DecodingError.dataCorrupted(
            let context)
            where context.codingPath.isEmpty
        {
            // Foundation calls a number it cannot hold (21! as Int, 1e400) "not valid JSON".
            // The token was validated with its message: say what did not fit instead.
            let said = context.debugDescription.contains("valid JSON") ? "" : " (\(context.debugDescription))"
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: [],
                    debugDescription: "\(kind(of: token)) that does not fit \(Value.self)\(said)"))
        }
    }

    /// What a JSON token is, for messages that must not quote it.
    static func kind(of token: ArraySlice<UInt8>) -> String {
        switch token.first {
        case UInt8(ascii: "\""): "a JSON string"
        case UInt8(ascii: "["): "a JSON array"
        case UInt8(ascii: "{"): "a JSON object"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): "a JSON boolean"
        case UInt8(ascii: "n"): "JSON null"
        default: "a JSON number"
        }
    }
}

/// Encodes one value as a one-element JSON array, the wire format's `result`.
enum ResultCoding {
    static func encode<Value: Encodable>(_ value: Value) throws -> [UInt8] {
        var writer = JSONWriter(capacity: 32)
        writer.raw("[")
        try writer.value(value, encoder: JSONEncoderBox())
        writer.raw("]")
        return writer.bytes
    }

    /// The first element of a `result` array (ivy's callback arguments after `err`).
    static func decode<Value: Decodable>(_ type: Value.Type, from json: [UInt8]) throws -> Value {
        let elements = try JSONObjectReader.arrayElements(json)
        guard let first = elements.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "empty result array"))
        }
        var decoder: JSONDecoder?
        return try ValueDecoding.decode(Value.self, from: json[first], decoder: &decoder)
    }
}
