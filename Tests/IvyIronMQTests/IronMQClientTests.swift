// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyCore
import Testing

@testable import IvyIronMQ

/// The reservation answers the client reads without JSONDecoder, server-free.
@Suite("IronMQ client answers")
struct IronMQClientTests {
    private func reserved(_ json: String) throws -> IronMQClient.ReservedMessage? {
        try IronMQClient.ReservedMessage(JSONObjectReader(Array(json.utf8)))
    }

    @Test func aReservedMessageReadsItsFourMembers() throws {
        let message = try #require(
            try reserved(
                #"{"id":"6xyz","body":"{\"a\":\"\u00e9\"}","reserved_count":3,"reservation_id":"r1"}"#))
        #expect(message.id == "6xyz")
        #expect(message.body == #"{"a":"é"}"#)
        #expect(message.reservedCount == 3)
        #expect(message.reservationID == "r1")
    }

    @Test func aNumericIDIsKeptAsItsDigits() throws {
        // The docs' examples show ids as numbers; Iron.io's server sends strings.
        let message = try #require(
            try reserved(#"{"id":5924620498196814694,"body":"b","reserved_count":1,"reservation_id":"r"}"#))
        #expect(message.id == "5924620498196814694")
    }

    @Test(arguments: [
        #"{"body":"b","reserved_count":1,"reservation_id":"r"}"#,
        #"{"id":"i","reserved_count":1,"reservation_id":"r"}"#,
        #"{"id":"i","body":"b","reservation_id":"r"}"#,
        #"{"id":"i","body":"b","reserved_count":1}"#,
        #"{"id":1.5,"body":"b","reserved_count":1,"reservation_id":"r"}"#,
        #"{"id":-1,"body":"b","reserved_count":1,"reservation_id":"r"}"#,
        #"{"id":true,"body":"b","reserved_count":1,"reservation_id":"r"}"#,
    ])
    func aMessageWithoutAUsableMemberIsNotRead(_ json: String) throws {
        #expect(try reserved(json) == nil)
    }

    @Test(arguments: [
        #"{"id":"i","body":7,"reserved_count":1,"reservation_id":"r"}"#,
        #"{"id":"i","body":"b","reserved_count":"1","reservation_id":"r"}"#,
    ])
    func aMemberOfTheWrongTypeThrows(_ json: String) {
        #expect(throws: JSONObjectReader.Failure.self) { try reserved(json) }
    }
}
