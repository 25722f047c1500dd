// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Testing

@testable import IvyCore

/// `TaskMessage` and `ResultNotification` on the wire (PROTOCOL.md), through ``MessageCodec``.
struct WireFormatTests {
    /// A message body with a readable name for parameterized tests.
    struct Body: Sendable, CustomTestStringConvertible {
        var label: String
        var bytes: [UInt8]
        init(_ label: String, _ text: String) { (self.label, self.bytes) = (label, Array(text.utf8)) }
        init(_ label: String, bytes: [UInt8]) { (self.label, self.bytes) = (label, bytes) }
        var testDescription: String { label }
    }

    let codec = MessageCodec()

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    // MARK: Task messages

    @Test func taskMessageRoundTripKeepsEveryField() throws {
        let message = TaskMessage(
            name: "testpackage.echo",
            args: bytes(#"["h\u00e9llo \"q\"\n",{"nested":[1,{"deep":null,"t":true}],"e":"😀"},-1.5e3,[]]"#),
            options: bytes(#"{"priority":5,"tags":["a","b"]}"#),
            id: "01J9-id-ÿ \"q\" \\ / \n\r\t\u{08}\u{0C}\u{01}\u{1F}\u{7F} é 😀 中文",
            notify: "ivy:notify:\"q\"\\/é😀中文",
            attempt: 3,
            createdAt: Date(timeIntervalSince1970: 1_800_000_000.25),
            deadline: Date(timeIntervalSince1970: 1_800_000_060.5))
        let encoded = codec.encode(message)
        let decoded = try codec.decodeTask(encoded)
        #expect(decoded == message)
        #expect(decoded.notify == message.notify)
        #expect(decoded.createdAt == Date(timeIntervalSince1970: 1_800_000_000.25))
        // Raw JSON travels byte for byte.
        #expect(decoded.args == message.args)
        #expect(decoded.options == message.options)
        // Control characters never appear raw in the encoded text.
        #expect(!encoded.contains(where: { $0 < 0x20 }))
    }

    @Test func aNotifyThatIsNoChannelNameMakesTheMessageMalformed() {
        for notify in [#""""#, #""a b""#, #""a\u0001b""#, "\"\(String(repeating: "c", count: 1025))\""] {
            let error = #expect(throws: IvyError.self) {
                _ = try codec.decodeTask(bytes(#"{"name":"a.b","args":[],"notify":"# + notify + "}"))
            }
            #expect(error?.code == .malformedMessage)
            #expect(error?.detail?.contains("notify") == true)
        }
    }

    @Test func encodedMessageUsesProtocolKeyOrder() {
        let minimal = TaskMessage(name: "testpackage.factorial", args: bytes("[5]"))
        #expect(
            text(minimal.encoded())
                == #"{"name":"testpackage.factorial","options":{},"args":[5],"attempt":1}"#)

        let full = TaskMessage(
            name: "a.b", args: bytes("[1]"), id: "x", notify: "n", attempt: 2,
            createdAt: Date(timeIntervalSince1970: 0), deadline: Date(timeIntervalSince1970: 1.5))
        #expect(
            text(full.encoded())
                == #"{"name":"a.b","options":{},"args":[1],"id":"x","notify":"n","attempt":2,"#
                + #""created_at":"1970-01-01T00:00:00.000Z","deadline":"1970-01-01T00:00:01.500Z"}"#)
    }

    @Test func etaRoundTrips() throws {
        let message = TaskMessage(
            name: "a.b", args: bytes("[]"), deadline: Date(timeIntervalSince1970: 61.5),
            eta: Date(timeIntervalSince1970: 1.25))
        #expect(
            text(message.encoded())
                == #"{"name":"a.b","options":{},"args":[],"attempt":1,"#
                + #""deadline":"1970-01-01T00:01:01.500Z","eta":"1970-01-01T00:00:01.250Z"}"#)
        let decoded = try TaskMessage(decoding: message.encoded())
        #expect(decoded.eta == Date(timeIntervalSince1970: 1.25))
        #expect(decoded == message)
        let offset = try TaskMessage(
            decoding: bytes(#"{"name":"a.b","args":[],"eta":"1970-01-01T01:00:01.25+01:00"}"#))
        #expect(offset.eta == Date(timeIntervalSince1970: 1.25))
        #expect(try TaskMessage(decoding: bytes(#"{"name":"a.b","args":[],"eta":null}"#)).eta == nil)
    }

    @Test func decodesNodeIvyMessage() throws {
        let message = try codec.decodeTask(
            bytes(#"{"name":"testpackage.factorial","options":{},"args":[5]}"#))
        #expect(message.name == "testpackage.factorial")
        #expect(message.args == bytes("[5]"))
        #expect(message.options == bytes("{}"))
        #expect(message.attempt == 1)
        #expect(message.id == nil)
        #expect(message.notify == nil)
        #expect(message.createdAt == nil)
        #expect(message.deadline == nil)
    }

    @Test func decodesPrettyPrintedMessageWithNulls() throws {
        let body = """
            {
              "name" : "testpackage.add",
              "options" : null,
              "args" : [ 1 , 2 ],
              "id" : null,
              "notify" : null,
              "attempt" : 2,
              "created_at" : "2026-11-23T10:15:30.123+01:00"
            }

            """
        let message = try codec.decodeTask(bytes(body))
        #expect(message.name == "testpackage.add")
        #expect(message.args == bytes("[ 1 , 2 ]"))
        #expect(message.options == bytes("{}"))
        #expect(message.id == nil)
        #expect(message.notify == nil)
        #expect(message.attempt == 2)
        let createdAt = try #require(message.createdAt)
        #expect(abs(createdAt.timeIntervalSince1970 - 1_795_425_330.123) < 0.001)
    }

    @Test func unknownKeysAreIgnored() throws {
        let message = try codec.decodeTask(bytes(#"{"extra":{"x":[1,2]},"name":"a.b","args":[],"more":"y"}"#))
        #expect(message.name == "a.b")
        #expect(message.args == bytes("[]"))
    }

    static let malformedBodies: [Body] = {
        let deepArgs = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        return [
            Body("empty body", ""),
            Body("whitespace only", " \n\t "),
            Body("not JSON", "factorial(5)"),
            Body("truncated", #"{"name":"testpackage.factorial","options":{},"args":[5"#),
            Body("truncated in a string", #"{"name":"testpackage.fact"#),
            Body("top-level array", #"[{"name":"a.b","args":[]}]"#),
            Body("top-level string", #""a.b""#),
            Body("missing name", #"{"options":{},"args":[5]}"#),
            Body("empty name", #"{"name":"","args":[5]}"#),
            Body("null name", #"{"name":null,"args":[5]}"#),
            Body("name not a string", #"{"name":5,"args":[5]}"#),
            Body("missing args", #"{"name":"a.b","options":{}}"#),
            Body("null args", #"{"name":"a.b","args":null}"#),
            Body("args a number", #"{"name":"a.b","args":5}"#),
            Body("args an object", #"{"name":"a.b","args":{"0":5}}"#),
            Body("args a string", #"{"name":"a.b","args":"[5]"}"#),
            Body("options an array", #"{"name":"a.b","options":[],"args":[]}"#),
            Body("options a string", #"{"name":"a.b","options":"{}","args":[]}"#),
            Body("attempt 0", #"{"name":"a.b","args":[],"attempt":0}"#),
            Body("attempt -1", #"{"name":"a.b","args":[],"attempt":-1}"#),
            Body("attempt a fraction", #"{"name":"a.b","args":[],"attempt":1.5}"#),
            Body("attempt an exponent", #"{"name":"a.b","args":[],"attempt":1e0}"#),
            Body("attempt a string", #"{"name":"a.b","args":[],"attempt":"2"}"#),
            Body("attempt past Int", #"{"name":"a.b","args":[],"attempt":99999999999999999999}"#),
            Body("id a number", #"{"name":"a.b","args":[],"id":7}"#),
            Body("bad created_at", #"{"name":"a.b","args":[],"created_at":"yesterday"}"#),
            Body("created_at without zone", #"{"name":"a.b","args":[],"created_at":"2026-11-23T10:15:30"}"#),
            Body("created_at a number", #"{"name":"a.b","args":[],"created_at":1795425330}"#),
            Body("bad deadline", #"{"name":"a.b","args":[],"deadline":"2026-13-01T00:00:00Z"}"#),
            Body("bad eta", #"{"name":"a.b","args":[],"eta":"in a minute"}"#),
            Body("eta a number", #"{"name":"a.b","args":[],"eta":1795425330}"#),
            Body("trailing garbage", #"{"name":"a.b","args":[]} x"#),
            Body("two objects", #"{"name":"a.b","args":[]}{}"#),
            Body("trailing comma", #"{"name":"a.b","args":[],}"#),
            Body("single quotes", #"{'name':'a.b','args':[]}"#),
            Body("bare key", #"{name:"a.b","args":[]}"#),
            Body("raw newline in a string", "{\"name\":\"a.\nb\",\"args\":[]}"),
            Body("bad escape", #"{"name":"a.\xb","args":[]}"#),
            Body("short \\u escape", #"{"name":"a.\u00e","args":[]}"#),
            Body("200 levels of args", #"{"name":"a.b","args":\#(deepArgs)}"#),
            Body("lone high surrogate in name", #"{"name":"a.\ud800","args":[]}"#),
            Body("lone high surrogate in notify", #"{"name":"a.b","args":[],"notify":"\ud800"}"#),
            Body("lone low surrogate", #"{"name":"a.b","args":[],"notify":"\udc00"}"#),
            Body("high surrogate then a letter", #"{"name":"a.b","args":[],"notify":"\ud800\u0041"}"#),
            Body(
                "invalid UTF-8 in name",
                bytes: Array(#"{"name":"a."#.utf8) + [0xC3, 0x28] + Array(#"","args":[]}"#.utf8)),
            Body(
                "overlong UTF-8 in name",
                bytes: Array(#"{"name":"a."#.utf8) + [0xC0, 0xAF] + Array(#"","args":[]}"#.utf8)),
            Body(
                "invalid UTF-8 between tokens",
                bytes: Array(#"{"name":"a.b","args":[]"#.utf8) + [0xFF] + [0x7D]),
            Body(
                "UTF-16 body",
                bytes: Array(
                    #"{"name":"a.b","args":[]}"#.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })),
        ]
    }()

    @Test(arguments: malformedBodies)
    func malformedTaskMessageIsRejected(_ body: Body) throws {
        let error = try #require(throws: IvyError.self) { try codec.decodeTask(body.bytes) }
        #expect(error.code == .malformedMessage)
    }

    @Test func argsNestedToTheDepthLimitAreAccepted() throws {
        let depth = JSONObjectReader.maximumDepth
        let args = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let message = try codec.decodeTask(bytes(#"{"name":"a.b","args":\#(args)}"#))
        #expect(message.args.count == 2 * depth)

        let tooDeep = "[" + args + "]"
        let error = try #require(throws: IvyError.self) {
            try codec.decodeTask(bytes(#"{"name":"a.b","args":\#(tooDeep)}"#))
        }
        #expect(error.code == .malformedMessage)
    }

    @Test func rejectionTextQuotesNoArgument() throws {
        let secret = "s3cret-payload"
        for body in [
            #"{"name":"a.b","args":["\#(secret)"],"attempt":0}"#,
            #"{"name":"a.b","args":["\#(secret)"],"options":"\#(secret)"}"#,
            #"{"name":"a.b","args":["\#(secret)"],"created_at":"\#(secret)"}"#,
            #"{"name":"a.b","args":["\#(secret)"] trailing"#,
        ] {
            let error = try #require(throws: IvyError.self) { try codec.decodeTask(bytes(body)) }
            #expect(!"\(error)".contains(secret))
            #expect(!(error.detail ?? "").contains(secret))
        }
    }

    /// RFC 8259 §8.1 requires UTF-8, and `JSONObjectReader` promises strict validation, but bytes
    /// inside strings that are only skipped (`args`, `options`, unknown keys) are not checked.
    @Test func invalidUTF8InsideArgsIsRejected() {
        let body = Array(#"{"name":"a.b","args":[""#.utf8) + [0xC3, 0x28] + Array(#""]}"#.utf8)
        let error = #expect(throws: IvyError.self) { try codec.decodeTask(body) }
        #expect(error?.code == .malformedMessage)
    }

    // MARK: Result notifications

    @Test func successNotificationRoundTrip() throws {
        let notification = ResultNotification(
            id: "id-\u{e9}-1", name: "testpackage.echo", args: bytes(#"["h\u00e9llo",{"a":[1,2]}]"#),
            options: bytes(#"{"k":"v"}"#), queue: "testpackage", attempt: 2,
            outcome: .success(result: bytes(#"[{"text":"é\n😀","n":-0.5e-3}]"#)))
        let decoded = try codec.decodeNotification(codec.encode(notification, answering: .authenticated))
        #expect(decoded == notification)
        guard case .success(let result) = decoded.outcome else {
            Issue.record("expected a success, got \(decoded.outcome)")
            return
        }
        #expect(result == bytes(#"[{"text":"é\n😀","n":-0.5e-3}]"#))
    }

    @Test(arguments: [true, false])
    func failureNotificationRoundTrip(retryable: Bool) throws {
        let failure = ResultNotification.RemoteError(
            name: "OverflowError", message: "factorial(21) \"overflows\"\n\tà 64-bit Int 😀",
            retryable: retryable)
        let notification = ResultNotification(
            id: "id-2", name: "testpackage.factorial", args: bytes("[21]"), queue: "testpackage", attempt: 10,
            outcome: .failure(failure))
        let encoded = codec.encode(notification, answering: nil)
        let decoded = try codec.decodeNotification(encoded)
        #expect(decoded == notification)
        #expect(decoded.outcome == .failure(failure))
        #expect(text(encoded).contains(#""notify":true"#))
        #expect(!text(encoded).contains(#""result""#))
    }

    @Test func notificationDefaultsForMissingKeys() throws {
        let success = try codec.decodeNotification(bytes(#"{"id":"x","result":[1]}"#))
        #expect(success.name == "")
        #expect(success.args == bytes("[]"))
        #expect(success.options == bytes("{}"))
        #expect(success.queue == "")
        #expect(success.attempt == 1)
        #expect(success.outcome == .success(result: bytes("[1]")))

        let failure = try codec.decodeNotification(bytes(#"{"id":"x","error":{}}"#))
        #expect(failure.outcome == .failure(.init(name: "Error", message: "", retryable: false)))
    }

    static let malformedNotifications: [Body] = [
        Body("not JSON", "ok"),
        Body("top-level array", #"[{"id":"x","result":[1]}]"#),
        Body("missing id", #"{"result":[1]}"#),
        Body("null id", #"{"id":null,"result":[1]}"#),
        Body("id a number", #"{"id":1,"result":[1]}"#),
        Body("neither result nor error", #"{"id":"x"}"#),
        Body("result a number", #"{"id":"x","result":5}"#),
        Body("result an object", #"{"id":"x","result":{"0":5}}"#),
        Body("result a string", #"{"id":"x","result":"[5]"}"#),
        Body("result null", #"{"id":"x","result":null}"#),
        Body("error a string", #"{"id":"x","error":"boom"}"#),
        Body("error retryable a string", #"{"id":"x","error":{"retryable":"yes"}}"#),
        Body("attempt a fraction", #"{"id":"x","result":[],"attempt":1.5}"#),
        Body("trailing garbage", #"{"id":"x","result":[]}]"#),
    ]

    @Test(arguments: malformedNotifications)
    func malformedNotificationIsRejected(_ body: Body) throws {
        let error = try #require(throws: IvyError.self) { try codec.decodeNotification(body.bytes) }
        #expect(error.code == .malformedMessage)
    }
}
