// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Testing

@testable import IvyCore

/// The strict RFC 8259 validator that indexes a message's top-level members.
struct JSONObjectReaderTests {
    private func reader(_ text: String) throws(JSONObjectReader.Failure) -> JSONObjectReader {
        try JSONObjectReader(Array(text.utf8))
    }

    private func raw(_ key: String, in reader: JSONObjectReader) -> String? {
        reader.raw(key).map { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: Strings

    @Test func unescapesEveryEscape() throws {
        let object = try reader(
            #"{"s":"q\" b\\ s\/ \b\f\n\r\t \u00e9 \u00E9 \u4e2D \ud83d\ude00 \uD83D\uDE00 \u0000 end"}"#)
        #expect(try object.string("s") == "q\" b\\ s/ \u{08}\u{0C}\n\r\t é é 中 😀 😀 \u{0} end")
    }

    @Test func readsRawUnicodeAndEmptyStrings() throws {
        let object = try reader(#"{"s":"héllo 😀 中文","e":"","n":null}"#)
        #expect(try object.string("s") == "héllo 😀 中文")
        #expect(try object.string("e") == "")
        #expect(try object.string("n") == nil)
        #expect(try object.string("absent") == nil)
        #expect(throws: JSONObjectReader.Failure.self) { try reader(#"{"s":5}"#).string("s") }
    }

    @Test func escapedKeysMatchTheirUnescapedText() throws {
        let object = try reader(#"{"n\u0061me":"x","caf\u00e9":1,"\ud83d\ude00":2}"#)
        #expect(try object.string("name") == "x")
        #expect(raw("café", in: object) == "1")
        #expect(raw("😀", in: object) == "2")
    }

    @Test(arguments: [
        #"{"s":"\ud800"}"#,  // lone high surrogate
        #"{"s":"\udc00"}"#,  // lone low surrogate
        #"{"s":"\ude00\ud83d"}"#,  // pair in the wrong order
        #"{"s":"\ud83d\u0041"}"#,  // high surrogate, then not a low one
        #"{"s":"\ud83dx"}"#,  // high surrogate at the end of the escapes
        #"{"s":"\x"}"#,
        #"{"s":"\u12"}"#,
        #"{"s":"\uZZZZ"}"#,
        #"{"s":"\'"}"#,
        "{\"s\":\"tab\there\"}",
        "{\"s\":\"nul\u{0}\"}",
        #"{"s":"unterminated}"#,
        #"{"s":"ends in a backslash\"#,
    ])
    func rejectsBadStrings(_ text: String) {
        // A bad string fails either when the object is indexed or when the member is read.
        #expect(throws: JSONObjectReader.Failure.self) { try reader(text).string("s") }
    }

    @Test func rejectsInvalidUTF8InReadStrings() {
        for bad: [UInt8] in [[0xC3, 0x28], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xFF], [0xE2, 0x82]] {
            let json = Array(#"{"s":"a"#.utf8) + bad + Array(#"b"}"#.utf8)
            #expect(throws: JSONObjectReader.Failure.self) { try JSONObjectReader(json).string("s") }
            let escaped = Array(#"{"s":"\n"#.utf8) + bad + Array(#""}"#.utf8)
            #expect(throws: JSONObjectReader.Failure.self) { try JSONObjectReader(escaped).string("s") }
        }
    }

    // MARK: Numbers and literals

    @Test(arguments: [
        "0", "-0", "1", "-1", "1e5", "1E+5", "1e-5", "1.5E-3", "123.456", "-0.0", "0e0", "1e400",
        "9007199254740993",
    ])
    func acceptsValidNumbers(_ number: String) throws {
        #expect(raw("n", in: try reader(#"{"n":\#(number)}"#)) == number)
        let json = Array("[\(number)]".utf8)
        let elements = try JSONObjectReader.arrayElements(json)
        #expect(elements.map { String(decoding: json[$0], as: UTF8.self) } == [number])
    }

    @Test(arguments: [
        "01", "-01", "00", "1.", ".5", "+1", "-", "1e", "1e+", "1E-", "1.e5", "--1", "0x10", "1_000",
        "NaN", "Infinity", "-Infinity", "1.5.2", "١",
    ])
    func rejectsInvalidNumbers(_ number: String) {
        #expect(throws: JSONObjectReader.Failure.self) { try reader(#"{"n":\#(number)}"#) }
        #expect(throws: JSONObjectReader.Failure.self) {
            try JSONObjectReader.arrayElements(Array("[\(number)]".utf8))
        }
    }

    @Test func readsIntegers() throws {
        let object = try reader(#"{"i":-42,"z":-0,"max":9223372036854775807,"null":null}"#)
        #expect(try object.integer("i") == -42)
        #expect(try object.integer("z") == 0)
        #expect(try object.integer("max") == Int.max)
        #expect(try object.integer("null") == nil)
        #expect(try object.integer("absent") == nil)
        for member in [#""4""#, "4.0", "4e0", "9223372036854775808", "true", "[4]"] {
            #expect(throws: JSONObjectReader.Failure.self) { try reader(#"{"i":\#(member)}"#).integer("i") }
        }
    }

    @Test func readsLiterals() throws {
        let object = try reader(#"{"t":true,"f":false,"n":null,"s":"true","one":1}"#)
        #expect(try object.bool("t") == true)
        #expect(try object.bool("f") == false)
        #expect(try object.bool("n") == nil)
        #expect(try object.bool("absent") == nil)
        #expect(object.isNull("n"))
        #expect(!object.isNull("s"))
        #expect(!object.isNull("absent"))
        #expect(throws: JSONObjectReader.Failure.self) { try object.bool("s") }
        #expect(throws: JSONObjectReader.Failure.self) { try object.bool("one") }
        #expect(object.firstByte("t") == UInt8(ascii: "t"))
        #expect(object.firstByte("s") == UInt8(ascii: "\""))
        #expect(object.firstByte("absent") == nil)
    }

    @Test(arguments: ["tru", "True", "TRUE", "nul", "nulll", "falsey", "fals", "undefined", "t", "n"])
    func rejectsInvalidLiterals(_ literal: String) {
        #expect(throws: JSONObjectReader.Failure.self) { try reader(#"{"v":\#(literal)}"#) }
    }

    // MARK: Objects

    @Test func lastDuplicateKeyWins() throws {
        let object = try reader(#"{"a":1,"b":"x","a":2,"b":"y","a":[3]}"#)
        #expect(raw("a", in: object) == "[3]")
        #expect(try object.string("b") == "y")
    }

    @Test func readsNestedObjects() throws {
        let object = try reader(#"{"o":{"k":"v","deep":{"n":1}},"arr":[1],"n":null}"#)
        let nested = try #require(try object.object("o"))
        #expect(try nested.string("k") == "v")
        #expect(raw("n", in: try #require(try nested.object("deep"))) == "1")
        #expect(try object.object("n") == nil)
        #expect(try object.object("absent") == nil)
        #expect(throws: JSONObjectReader.Failure.self) { try object.object("arr") }
    }

    @Test func emptyObjectHasNoMembers() throws {
        for text in ["{}", "{ }", " {\n} "] {
            let object = try reader(text)
            #expect(object.raw("a") == nil)
        }
    }

    @Test func allowsTheFourJSONWhitespaceCharactersEverywhere() throws {
        let ws = " \t\r\n"
        let object = try reader(
            "\(ws){\(ws)\"a\"\(ws):\(ws)1\(ws),\(ws)\"b\"\(ws):\(ws)[\(ws)1\(ws),\(ws)2\(ws)]\(ws)}\(ws)")
        #expect(raw("a", in: object) == "1")
        #expect(raw("b", in: object) == "[\(ws)1\(ws),\(ws)2\(ws)]")
    }

    @Test(arguments: ["\u{0C}", "\u{0B}", "\u{A0}", "\u{FEFF}", "\u{2028}", "\u{3000}"])
    func rejectsOtherWhitespace(_ space: String) {
        #expect(throws: JSONObjectReader.Failure.self) { try reader("\(space){\"a\":1}") }
        #expect(throws: JSONObjectReader.Failure.self) { try reader("{\"a\":\(space)1}") }
        #expect(throws: JSONObjectReader.Failure.self) { try reader("{\"a\":1}\(space)") }
    }

    @Test(arguments: [
        "", "{", "}", "[]", "\"a\"", "1", "null", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, "{,}",
        #"{"a" 1}"#, #"{"a":1 "b":2}"#, "{1:2}", "{a:1}", #"{"a":1}}"#, #"{"a":1}{"#, #"{"a":[1}"#,
        #"{"a":{]}"#,
    ])
    func rejectsMalformedObjects(_ text: String) {
        #expect(throws: JSONObjectReader.Failure.self) { try reader(text) }
    }

    @Test func failureReportsTheByteOffset() {
        let failure = #expect(throws: JSONObjectReader.Failure.self) { try reader(#"{"a":1,}"#) }
        #expect(failure?.offset == 7)
        #expect(failure?.description.hasSuffix("at byte 7") == true)
    }

    @Test func nestingIsCappedAtTheMaximumDepth() throws {
        let depth = JSONObjectReader.maximumDepth
        func nested(_ levels: Int) -> String {
            #"{"a":"# + String(repeating: "[", count: levels) + String(repeating: "]", count: levels) + "}"
        }
        _ = try reader(nested(depth))
        #expect(throws: JSONObjectReader.Failure.self) { try reader(nested(depth + 1)) }
        // Hostile depth fails with a typed error, not a stack overflow.
        #expect(throws: JSONObjectReader.Failure.self) { try reader(nested(100_000)) }
        let objects =
            #"{"a":"# + String(repeating: #"{"a":"#, count: depth + 1) + "1"
            + String(repeating: "}", count: depth + 2)
        #expect(throws: JSONObjectReader.Failure.self) { try reader(objects) }
    }

    // MARK: Arrays

    @Test func arrayElementsGivesTheRangeOfEachElement() throws {
        let json = Array(#" [1, "a,]" ,{"b":[2,3]} , null,[ ] ,-2.5e1,true ] "#.utf8)
        let ranges = try JSONObjectReader.arrayElements(json)
        #expect(
            ranges.map { String(decoding: json[$0], as: UTF8.self) }
                == ["1", #""a,]""#, #"{"b":[2,3]}"#, "null", "[ ]", "-2.5e1", "true"])
        #expect(ranges.first == 2..<3)
    }

    @Test func emptyArraysHaveNoElements() throws {
        #expect(try JSONObjectReader.arrayElements(Array("[]".utf8)).isEmpty)
        #expect(try JSONObjectReader.arrayElements(Array(" [ \n ] ".utf8)).isEmpty)
    }

    @Test(arguments: [
        "", "[", "]", "[1,]", "[,1]", "[,]", "[1 2]", "[1]x", "[1]]", #"["a""#, "1", "{}", "[01]",
        #"[{"a":1]"#,
    ])
    func rejectsMalformedArrays(_ text: String) {
        #expect(throws: JSONObjectReader.Failure.self) {
            try JSONObjectReader.arrayElements(Array(text.utf8))
        }
    }

    @Test func arrayMembersOfObjectsAndOfStrings() throws {
        let object = try reader(
            #"{"messages":[{"id":"1","n":2}, {"id":3}],"ids":["a","b\u00e9"],"none":null,"empty":[]}"#)
        let messages = try #require(try object.objects("messages"))
        #expect(messages.count == 2)
        #expect(try messages[0].string("id") == "1")
        #expect(try messages[0].integer("n") == 2)
        #expect(raw("id", in: messages[1]) == "3")
        #expect(try object.strings("ids") == ["a", "bé"])
        #expect(try object.strings("empty") == [])
        #expect(try object.objects("none") == nil)
        #expect(try object.strings("absent") == nil)
    }

    @Test(arguments: [
        (#"{"a":{"x":1}}"#, "an object is not an array"),
        (#"{"a":"s"}"#, "a string is not an array"),
        (#"{"a":[{"x":1},2]}"#, "2 is not an object"),
        (#"{"a":["s",null]}"#, "null is not a string"),
    ])
    func arrayMembersOfTheWrongTypeThrow(_ text: String, _ why: String) throws {
        let object = try reader(text)
        // Every case is also wrong for the other reading: an object or a string comes first.
        #expect(throws: JSONObjectReader.Failure.self, "\(why)") { try object.objects("a") }
        #expect(throws: JSONObjectReader.Failure.self, "\(why)") { try object.strings("a") }
    }
}
