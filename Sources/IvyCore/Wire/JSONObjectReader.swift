// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Validates one JSON document whose top level is an object and indexes its members.
///
/// The member values stay raw byte ranges: `args` and `result` are decoded later, by the task's
/// own types, and nothing else is parsed twice. Validation is strict (RFC 8259) and nesting is
/// capped so hostile input fails with a typed error instead of exhausting the stack.
package struct JSONObjectReader {
    package struct Failure: Error, CustomStringConvertible {
        package var offset: Int
        package var reason: String
        package var description: String { "\(reason) at byte \(offset)" }
    }

    static let maximumDepth = 128

    /// One member: where its name (between the quotes) and its value are in ``bytes``.
    struct Member {
        var name: Range<Int>
        var nameHasEscapes: Bool
        var value: Range<Int>
    }

    package let bytes: [UInt8]
    private var members: [Member] = []

    package init(_ bytes: [UInt8]) throws(Failure) {
        self.bytes = bytes
        var scanner = Scanner(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.peek == UInt8(ascii: "{") else { throw scanner.failure("expected a JSON object") }
        members = try scanner.objectMembers()
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { throw scanner.failure("unexpected text after the object") }
    }

    /// The raw JSON text of a member's value, or nil if the object has no such key.
    package func raw(_ key: String) -> ArraySlice<UInt8>? {
        // The last occurrence wins, as in JavaScript's JSON.parse.
        guard let member = members.last(where: { named($0, key) }) else { return nil }
        return bytes[member.value]
    }

    /// Compares names without building a string, except for the rare name with escapes.
    private func named(_ member: Member, _ key: String) -> Bool {
        guard member.nameHasEscapes else {
            guard member.name.count == key.utf8.count else { return false }
            guard !key.isEmpty else { return true }
            var key = key
            return key.withUTF8 { key in
                bytes.withUnsafeBufferPointer { bytes in
                    memcmp(bytes.baseAddress! + member.name.lowerBound, key.baseAddress!, key.count) == 0
                }
            }
        }
        var scanner = Scanner(bytes: bytes, position: member.name.lowerBound - 1)
        return (try? scanner.string()) == key
    }

    /// True when the member exists and is JSON `null`.
    package func isNull(_ key: String) -> Bool {
        raw(key).map { $0.elementsEqual("null".utf8) } ?? false
    }

    /// A string member; nil when absent or null, an error when of another type.
    package func string(_ key: String) throws(Failure) -> String? {
        guard let value = raw(key), !isNull(key) else { return nil }
        var scanner = Scanner(bytes: bytes, position: value.startIndex)
        guard scanner.peek == UInt8(ascii: "\"") else {
            throw Failure(offset: value.startIndex, reason: "\"\(key)\" is not a string")
        }
        return try scanner.string()
    }

    /// An integer member; nil when absent or null, an error when not a whole number.
    package func integer(_ key: String) throws(Failure) -> Int? {
        guard let value = raw(key), !isNull(key) else { return nil }
        guard let number = Int(String(decoding: value, as: UTF8.self)) else {
            throw Failure(offset: value.startIndex, reason: "\"\(key)\" is not an integer")
        }
        return number
    }

    /// A boolean member; nil when absent or null.
    package func bool(_ key: String) throws(Failure) -> Bool? {
        guard let value = raw(key), !isNull(key) else { return nil }
        if value.elementsEqual("true".utf8) { return true }
        if value.elementsEqual("false".utf8) { return false }
        throw Failure(offset: value.startIndex, reason: "\"\(key)\" is not a boolean")
    }

    /// A nested object member, indexed the same way; nil when absent or null.
    package func object(_ key: String) throws(Failure) -> JSONObjectReader? {
        guard let value = raw(key), !isNull(key) else { return nil }
        guard value.first == UInt8(ascii: "{") else {
            throw Failure(offset: value.startIndex, reason: "\"\(key)\" is not an object")
        }
        return try JSONObjectReader(Array(value))
    }

    /// The first character of a member's value, to check its JSON type cheaply.
    package func firstByte(_ key: String) -> UInt8? { raw(key)?.first }

    /// An array member whose elements are all objects, each indexed; nil when absent or null.
    package func objects(_ key: String) throws(Failure) -> [JSONObjectReader]? {
        var result: [JSONObjectReader] = []
        guard
            try elements(
                key,
                { range throws(Failure) in
                    guard bytes[range.lowerBound] == UInt8(ascii: "{") else {
                        throw Failure(
                            offset: range.lowerBound, reason: "an element of \"\(key)\" is not an object")
                    }
                    result.append(try JSONObjectReader(Array(bytes[range])))
                })
        else { return nil }
        return result
    }

    /// An array member whose elements are all strings; nil when absent or null.
    package func strings(_ key: String) throws(Failure) -> [String]? {
        var result: [String] = []
        guard
            try elements(
                key,
                { range throws(Failure) in
                    var scanner = Scanner(bytes: bytes, position: range.lowerBound)
                    guard scanner.peek == UInt8(ascii: "\"") else {
                        throw Failure(
                            offset: range.lowerBound, reason: "an element of \"\(key)\" is not a string")
                    }
                    result.append(try scanner.string())
                })
        else { return nil }
        return result
    }

    /// Calls `body` with the byte range of each element of an array member; false when the
    /// member is absent or null.
    private func elements(_ key: String, _ body: (Range<Int>) throws(Failure) -> Void) throws(Failure) -> Bool
    {
        guard let value = raw(key), !isNull(key) else { return false }
        var scanner = Scanner(bytes: bytes, position: value.startIndex)
        guard scanner.peek == UInt8(ascii: "[") else {
            throw Failure(offset: value.startIndex, reason: "\"\(key)\" is not an array")
        }
        for range in try scanner.arrayElements() { try body(range) }
        return true
    }
}

extension JSONObjectReader {
    /// Validates a JSON array and returns the byte ranges of its elements, in order.
    static func arrayElements(_ bytes: [UInt8]) throws(Failure) -> [Range<Int>] {
        var scanner = Scanner(bytes: bytes)
        scanner.skipWhitespace()
        let elements = try scanner.arrayElements()
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { throw scanner.failure("unexpected text after the array") }
        return elements
    }

    /// A cursor over JSON bytes that validates as it skips.
    struct Scanner {
        let bytes: [UInt8]
        var position: Int = 0
        var depth = 0

        var isAtEnd: Bool { position >= bytes.count }
        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        func failure(_ reason: String) -> Failure { Failure(offset: position, reason: reason) }

        mutating func skipWhitespace() {
            while let byte = peek, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
                position += 1
            }
        }

        mutating func expect(_ byte: UInt8) throws(Failure) {
            guard peek == byte else {
                throw failure("expected '\(Character(Unicode.Scalar(byte)))'")
            }
            position += 1
        }

        mutating func objectMembers() throws(Failure) -> [Member] {
            try expect(UInt8(ascii: "{"))
            var members: [Member] = []
            skipWhitespace()
            if peek == UInt8(ascii: "}") {
                position += 1
                return members
            }
            while true {
                skipWhitespace()
                guard peek == UInt8(ascii: "\"") else { throw failure("expected a member name") }
                let (name, nameHasEscapes) = try skipString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                let start = position
                try skipValue()
                members.append(Member(name: name, nameHasEscapes: nameHasEscapes, value: start..<position))
                skipWhitespace()
                if peek == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                return members
            }
        }

        mutating func skipValue() throws(Failure) {
            guard let byte = peek else { throw failure("unexpected end of input") }
            switch byte {
            case UInt8(ascii: "{"):
                try nested { (scanner: inout Scanner) throws(Failure) in _ = try scanner.objectMembers() }
            case UInt8(ascii: "["):
                try nested { (scanner: inout Scanner) throws(Failure) in try scanner.skipArray() }
            case UInt8(ascii: "\""):
                try skipString()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw failure("unexpected character")
            }
        }

        private mutating func nested(_ body: (inout Scanner) throws(Failure) -> Void) throws(Failure) {
            depth += 1
            guard depth <= JSONObjectReader.maximumDepth else { throw failure("nesting too deep") }
            try body(&self)
            depth -= 1
        }

        private mutating func skipArray() throws(Failure) {
            _ = try arrayElements()
        }

        mutating func arrayElements() throws(Failure) -> [Range<Int>] {
            try expect(UInt8(ascii: "["))
            var elements: [Range<Int>] = []
            skipWhitespace()
            if peek == UInt8(ascii: "]") {
                position += 1
                return elements
            }
            while true {
                skipWhitespace()
                let start = position
                try skipValue()
                elements.append(start..<position)
                skipWhitespace()
                if peek == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return elements
            }
        }

        private mutating func literal(_ word: StaticString) throws(Failure) {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count else { throw failure("unexpected end of input") }
            let matches = word.withUTF8Buffer { bytes[position..<position + count].elementsEqual($0) }
            guard matches else { throw failure("invalid literal") }
            position += count
        }

        private mutating func number() throws(Failure) {
            if peek == UInt8(ascii: "-") { position += 1 }
            guard let first = peek, isDigit(first) else { throw failure("invalid number") }
            position += 1
            if first != UInt8(ascii: "0") { skipDigits() }
            if peek == UInt8(ascii: ".") {
                position += 1
                guard let digit = peek, isDigit(digit) else { throw failure("invalid number") }
                skipDigits()
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                position += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { position += 1 }
                guard let digit = peek, isDigit(digit) else { throw failure("invalid number") }
                skipDigits()
            }
        }

        private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

        private mutating func skipDigits() {
            while let byte = peek, isDigit(byte) { position += 1 }
        }

        /// Moves past a string, checking its escapes and control characters but not building it.
        ///
        /// - Returns: Where its text is (between the quotes), and whether it has escapes.
        @discardableResult
        mutating func skipString() throws(Failure) -> (text: Range<Int>, hasEscapes: Bool) {
            try expect(UInt8(ascii: "\""))
            let start = position
            var isASCII = true
            var hasEscapes = false
            while true {
                guard let byte = peek else { throw failure("unterminated string") }
                if byte == UInt8(ascii: "\"") {
                    // Non-ASCII text is checked as UTF-8 here, once; ASCII needs no check.
                    if !isASCII, String(validating: bytes[start..<position], as: UTF8.self) == nil {
                        throw Failure(offset: start, reason: "invalid UTF-8 in string")
                    }
                    position += 1
                    return (start..<position - 1, hasEscapes)
                }
                if byte >= 0x80 { isASCII = false }
                if byte < 0x20 { throw failure("control character in string") }
                if byte == UInt8(ascii: "\\") {
                    hasEscapes = true
                    guard position + 1 < bytes.count else { throw failure("unterminated string") }
                    switch bytes[position + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        position += 2
                    case UInt8(ascii: "u"):
                        guard position + 6 <= bytes.count,
                            bytes[position + 2..<position + 6].allSatisfy({ $0.isHexDigit })
                        else { throw failure("invalid \\u escape") }
                        position += 6
                    default: throw failure("bad escape")
                    }
                } else {
                    position += 1
                }
            }
        }

        /// Reads a string at the cursor and returns it unescaped.
        mutating func string() throws(Failure) -> String {
            try expect(UInt8(ascii: "\""))
            let start = position
            var hasEscapes = false
            var isASCII = true
            while true {
                guard let byte = peek else { throw failure("unterminated string") }
                if byte == UInt8(ascii: "\"") { break }
                if byte >= 0x80 { isASCII = false }
                if byte < 0x20 { throw failure("control character in string") }
                if byte == UInt8(ascii: "\\") {
                    hasEscapes = true
                    position += 2
                } else {
                    position += 1
                }
            }
            let end = position
            position += 1
            guard hasEscapes else {
                // ASCII is valid UTF-8 as it stands; only other text needs the check.
                if isASCII { return String(decoding: bytes[start..<end], as: UTF8.self) }
                guard let text = String(validating: bytes[start..<end], as: UTF8.self) else {
                    throw Failure(offset: start, reason: "invalid UTF-8 in string")
                }
                return text
            }
            return try unescape(start..<end)
        }

        private func unescape(_ range: Range<Int>) throws(Failure) -> String {
            var output: [UInt8] = []
            output.reserveCapacity(range.count)
            var index = range.lowerBound
            func hex4(at offset: Int) throws(Failure) -> UInt16 {
                guard offset + 4 <= range.upperBound else {
                    throw Failure(offset: offset, reason: "truncated \\u escape")
                }
                var value: UInt16 = 0
                for byte in bytes[offset..<offset + 4] {
                    let digit: UInt8
                    switch byte {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - 0x30
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - 0x57
                    case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - 0x37
                    default: throw Failure(offset: offset, reason: "invalid \\u escape")
                    }
                    value = value << 4 | UInt16(digit)
                }
                return value
            }
            while index < range.upperBound {
                let byte = bytes[index]
                guard byte == UInt8(ascii: "\\") else {
                    output.append(byte)
                    index += 1
                    continue
                }
                guard index + 1 < range.upperBound else { throw Failure(offset: index, reason: "bad escape") }
                let escaped = bytes[index + 1]
                index += 2
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escaped)
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = UInt32(try hex4(at: index))
                    index += 4
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard index + 6 <= range.upperBound, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw Failure(offset: index, reason: "unpaired surrogate") }
                        let low = UInt32(try hex4(at: index + 2))
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw Failure(offset: index, reason: "unpaired surrogate")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                    guard let unicode = Unicode.Scalar(scalar) else {
                        throw Failure(offset: index, reason: "unpaired surrogate")
                    }
                    output.append(contentsOf: String(Character(unicode)).utf8)
                default: throw Failure(offset: index - 1, reason: "bad escape")
                }
            }
            guard let text = String(validating: output, as: UTF8.self) else {
                throw Failure(offset: range.lowerBound, reason: "invalid UTF-8 in string")
            }
            return text
        }
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}
