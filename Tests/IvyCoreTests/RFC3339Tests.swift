// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Testing

@testable import IvyCore

/// The wire format's timestamps: written as `YYYY-MM-DDTHH:MM:SS.mmmZ`, read with any offset.
struct RFC3339Tests {
    @Test func formatsUTCWithMilliseconds() {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_795_428_930.5)) == "2026-11-23T10:15:30.500Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00.000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 4_102_444_799.75)) == "2099-12-31T23:59:59.750Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
    }

    @Test func formatHasTheFixedShape() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let seconds = Double.random(in: 0..<4_102_444_800, using: &generator)
            let text = RFC3339.format(Date(timeIntervalSince1970: seconds))
            let shape = text.map { $0.isNumber ? "9" : String($0) }.joined()
            #expect(shape == "9999-99-99T99:99:99.999Z", "\(text)")
        }
    }

    @Test(arguments: [
        ("2026-11-23T10:15:30Z", 1_795_428_930.0),
        ("2026-11-23T10:15:30.123Z", 1_795_428_930.123),
        ("2026-11-23T10:15:30.5Z", 1_795_428_930.5),
        ("2026-11-23T10:15:30.123456789Z", 1_795_428_930.123456789),
        ("2026-11-23t10:15:30z", 1_795_428_930.0),
        ("2026-11-23 10:15:30Z", 1_795_428_930.0),
        ("2026-11-23T12:15:30+02:00", 1_795_428_930.0),
        ("2026-11-23T04:45:30-05:30", 1_795_428_930.0),
        ("2026-11-23T10:15:30.250+00:00", 1_795_428_930.25),
        ("2026-11-23T10:15:30-00:00", 1_795_428_930.0),
        ("2026-11-24T00:15:30+14:00", 1_795_428_930.0),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.5Z", -0.5),
        ("2000-02-29T00:00:00Z", 951_782_400),
    ])
    func parsesOffsetsAndFractions(_ text: String, _ seconds: Double) throws {
        let date = try #require(RFC3339.parse(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 0.000_001)
    }

    @Test(arguments: [
        "", "garbage", "2026-11-23", "2026-11-23T10:15:30", "2026-11-23T10:15Z", "2026-11-23T10:15:30.Z",
        "2026-11-23T10:15:30+0200", "2026-11-23T10:15:30+02", "2026-11-23T10:15:30 Z",
        "2026-11-23T10:15:30Z ",
        " 2026-11-23T10:15:30Z", "2026-1-23T10:15:30Z", "26-11-23T10:15:30Z", "2026/11/23T10:15:30Z",
        "2026-11-23X10:15:30Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-11-00T00:00:00Z",
        "2026-11-32T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:60:00Z", "2026-11-23T10:15:61Z",
        "2026-11-23T10:15:30ZZ", "2026-11-23T10:15:30.12a3Z", "+2026-11-23T10:15:30Z", "２０２６-11-23T10:15:30Z",
        "2026-11-23T10:15:30.123", "1795428930",
    ])
    func rejectsGarbage(_ text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test func roundTripIsWithinAMillisecond() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<1000 {
            let original = Date(timeIntervalSince1970: Double.random(in: -1e9..<4e9, using: &generator))
            let parsed = try #require(RFC3339.parse(RFC3339.format(original)))
            #expect(abs(original.timeIntervalSince(parsed)) < 0.001, "\(original.timeIntervalSince1970)")
        }
    }

    @Test func formattingAParsedTimeGivesTheSameText() throws {
        for text in [
            "2026-11-23T10:15:30.000Z", "2026-11-23T10:15:30.500Z", "2026-11-23T10:15:30.250Z",
            "1999-12-31T23:59:59.750Z", "2038-01-19T03:14:08.000Z",
        ] {
            #expect(RFC3339.format(try #require(RFC3339.parse(text))) == text)
        }
    }

    /// A timestamp with any millisecond value survives parse → format unchanged (the formatter
    /// rounds the whole count of milliseconds once, rather than flooring the binary fraction).
    @Test func formattingKeepsEveryMillisecondValue() throws {
        var changed: [String] = []
        for millis in 0..<1000 {
            let text = "2026-11-23T10:15:30." + String(format: "%03d", millis) + "Z"
            let again = RFC3339.format(try #require(RFC3339.parse(text)))
            if again != text { changed.append("\(text) → \(again)") }
        }
        #expect(changed.count == 0, "such as \(changed.prefix(3))")
    }

    @Test(arguments: [
        "2026-02-31T00:00:00Z", "2026-04-31T10:00:00Z", "2026-11-23T10:15:30+99:99",
        "2026-11-23T10:15:30+24:00",
    ])
    func impossibleDatesAndOffsetsAreRejected(_ text: String) {
        #expect(RFC3339.parse(text) == nil)
    }
}

extension RFC3339Tests {
    @Test func timesPastWhatFourYearDigitsSayAreRefusedAndNeverWrittenWrapped() {
        // 23:59:59.9996 rounds to the millisecond into year 10000, which would be written "0000".
        #expect(RFC3339.parse("9999-12-31T23:59:59.9996Z") == nil)
        #expect(RFC3339.parse("9999-12-31T23:00:00-05:00") == nil)
        #expect(RFC3339.parse("9999-12-31T23:59:59.999Z") != nil)
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1e15)) == "9999-12-31T23:59:59.999Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1e15)) == "0000-01-01T00:00:00.000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: .infinity)) == "9999-12-31T23:59:59.999Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: .nan)) == "1970-01-01T00:00:00.000Z")
    }
}
