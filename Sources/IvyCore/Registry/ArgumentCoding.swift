// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Encodes a call's arguments as one JSON array, the wire format's `args`.
struct ArgumentEncoder: Encodable {
    let encodeElements: (inout any UnkeyedEncodingContainer) throws -> Void

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try encodeElements(&container)
    }

    static func encode<each Argument: Encodable>(_ arguments: repeat each Argument) throws -> [UInt8] {
        let list = ArgumentEncoder { container in
            for argument in repeat each arguments { try container.encode(argument) }
        }
        return Array(try JSONEncoder().encode(list))
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
    private let decoder = JSONDecoder()

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
        return try decoder.decode(Value.self, from: Data(json[elements[index]]))
    }

    static func count<each Value>(_ types: repeat (each Value).Type) -> Int {
        var count = 0
        for _ in repeat each types { count += 1 }
        return count
    }
}

/// Encodes one value as a one-element JSON array, the wire format's `result`.
enum ResultCoding {
    static func encode<Value: Encodable>(_ value: Value) throws -> [UInt8] {
        Array(try JSONEncoder().encode([value]))
    }

    static func decode<Value: Decodable>(_ type: Value.Type, from json: [UInt8]) throws -> Value {
        let values = try JSONDecoder().decode([Value].self, from: Data(json))
        guard let first = values.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "empty result array"))
        }
        return first
    }
}
