// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

@testable import IvyIronMQ

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What the IronMQ backend does beyond the shared conformance suite, against the local server.
@Suite("IronMQ backend")
struct IronMQBackendTests {
    private func open() async throws -> (IronMQBackend, QueueName) {
        do {
            let backend = try await IronMQBackend.connect(url: Services.ironMQURL)
            return (backend, try QueueName("im-\(UUID().uuidString.prefix(8).lowercased())"))
        } catch {
            try Services.unavailable("IronMQ at \(Redaction.redact(url: Services.ironMQURL))", error)
        }
    }

    @Test func aWrongTokenIsAClearErrorAtStartUpThatDoesNotShowIt() async throws {
        let configuration = try IronMQConfiguration(url: Services.ironMQURL)
        guard Services.accepts(host: configuration.host, port: configuration.port) else {
            _ = try await open()  // skips or fails, as services require
            return
        }
        let wrong =
            "ironmq+http://not-the-t0ken@\(configuration.host):\(configuration.port)/\(configuration.projectID)"
        let error = await #expect(throws: IvyError.self) { _ = try await IronMQBackend.connect(url: wrong) }
        #expect(error?.code == .connectionFailed)
        #expect(error?.detail?.contains("401") == true)
        #expect(error.map { "\($0)" }?.contains("not-the-t0ken") == false)
    }

    @Test func aTouchHandsOutANewReservationAndTheOldOneIsRefused() async throws {
        let (backend, queue) = try await open()
        _ = try await backend.send(Array(#"{"name":"a.b","args":[]}"#.utf8), to: queue)
        let reservation = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        let extended = try await backend.extend(reservation, visibility: .seconds(60))
        #expect(extended.receipt != reservation.receipt)
        let stale = await #expect(throws: IvyError.self) { try await backend.ack(reservation) }
        #expect(stale?.code == .reservationLost)
        try await backend.ack(extended)
        await backend.close()
    }

    @Test func aBodyThatIsNotUTF8IsRefusedBeforeItIsSent() async throws {
        let (backend, queue) = try await open()
        let error = await #expect(throws: IvyError.self) {
            _ = try await backend.send([0xFF, 0xFE, 0x00], to: queue)
        }
        #expect(error?.code == .malformedMessage)
        #expect(try await backend.size(of: queue).ready == 0)
        await backend.close()
    }

    @Test func aDeadLetterKeepsTheBodyAndTheReason() async throws {
        let (backend, queue) = try await open()
        let body = Array(#"{"name":"x.y","args":[1]}"#.utf8)
        let id = try await backend.send(body, to: queue)
        let reservation = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        try await backend.deadLetter(reservation, reason: "UnknownTask: x.y is not registered (attempt 1)")
        let letters = try await backend.deadLetters(of: queue, count: 10)
        #expect(letters.map(\.messageID) == [id])
        #expect(letters.first?.body == body)
        #expect(letters.first?.reason == "UnknownTask: x.y is not registered (attempt 1)")
        #expect(letters.first?.deliveryCount == 1)
        #expect(try await backend.requeueDeadLetters(of: queue, count: 10) == 1)
        let again = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        #expect(again.body == body)
        try await backend.ack(again)
        await backend.close()
    }

    @Test func aWrongProjectIsAClearErrorAtStartUp() async throws {
        let configuration = try IronMQConfiguration(url: Services.ironMQURL)
        guard Services.accepts(host: configuration.host, port: configuration.port) else {
            _ = try await open()
            return
        }
        var wrong = configuration
        wrong.projectID = "no-such-project"
        let error = await #expect(throws: IvyError.self) {
            _ = try await IronMQBackend.connect(configuration: wrong)
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.detail?.contains("project") == true)
    }

    @Test func requeueingFromADeadQueueThatDoesNotExistMovesNothing() async throws {
        let (backend, queue) = try await open()
        #expect(try await backend.requeueDeadLetters(of: queue, count: 10) == 0)
        #expect(try await backend.deadLetters(of: queue, count: 10).isEmpty)
        await backend.close()
    }

    @Test func aClosedBackendRefusesAtOnce() async throws {
        let (backend, queue) = try await open()
        await backend.close()
        let error = await #expect(throws: IvyError.self) {
            _ = try await backend.send(Array("{}".utf8), to: queue)
        }
        #expect(error?.code == .closed)
    }

    /// Acks that arrive together share one batch delete, which IronMQ applies all or none: one
    /// stale reservation among them must cost only its own ack.
    @Test func oneStaleAckAmongManyFailsAloneAndTheOthersAreDeleted() async throws {
        let (backend, queue) = try await open()
        _ = try await backend.send(batch: (0..<8).map { Array(#"{"n":\#($0)}"#.utf8) }, to: queue)
        var reserved: [Reservation<IronMQBackend.Receipt>] = []
        while reserved.count < 8 {
            reserved += try await backend.reserve(
                from: queue, count: 8, visibility: .seconds(60), wait: .seconds(5))
        }
        // The first one's receipt goes stale: a touch replaced it.
        let fresh = try await backend.extend(reserved[0], visibility: .seconds(60))
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for reservation in reserved {
                group.addTask { (try? await backend.ack(reservation)) != nil }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 7)
        #expect(try await backend.size(of: queue).live == 1, "only the touched message is left")
        try await backend.ack(fresh)
        #expect(try await backend.size(of: queue).live == 0)
        await backend.close()
    }

    @Test func sendsAndAcksDoNotWaitBehindALongPoll() async throws {
        let (backend, queue) = try await open()
        let other = try QueueName("\(queue)-b")
        _ = try await backend.send(Array(#"{"name":"a.b","args":[]}"#.utf8), to: other)
        // A reservation that waits on an empty queue for up to 20 s, holding its connection.
        let polling = Task {
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(20))
        }
        try await withDeadline(.seconds(10), "the long poll to be handed to a connection") {
            while backend.longPollsInFlight == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        // Requests made meanwhile go to other connections: they finish while the poll waits.
        let reserved = try #require(
            try await backend.reserve(from: other, count: 1, visibility: .seconds(30), wait: .zero).first)
        try await backend.ack(reserved)
        _ = try await backend.send(Array(#"{"name":"a.c","args":[]}"#.utf8), to: queue)
        // The send ends the long poll with its message.
        let woken = try await polling.value
        #expect(woken.count == 1)
        #expect(woken.first.map { String(decoding: $0.body, as: UTF8.self) } == #"{"name":"a.c","args":[]}"#)
        try await backend.ack(try #require(woken.first))
        await backend.close()
    }

    @Test func deadLettersGoWhereTheQueuesOwnSettingSaysAndStayApartThere() async throws {
        let (backend, queue) = try await open()
        let other = try QueueName("\(queue)-b")
        let graveyard = try QueueName("\(queue)-graveyard")
        for name in [queue, other] { try await setDeadLetterQueue(of: name, to: graveyard.rawValue) }
        for (name, reason) in [(queue, "A: it broke"), (other, "B: it broke too")] {
            _ = try await backend.send(Array(#"{"name":"x.y","args":["\#(name)"]}"#.utf8), to: name)
            let reservation = try #require(
                try await backend.reserve(from: name, count: 1, visibility: .seconds(30), wait: .seconds(5))
                    .first)
            try await backend.deadLetter(reservation, reason: reason)
        }
        // And one that IronMQ itself could have moved there: no Ivy record, no queue named.
        _ = try await backend.send(Array("raw".utf8), to: graveyard)

        #expect(try await backend.deadLetters(of: queue, count: 10).map(\.reason) == ["A: it broke"])
        #expect(try await backend.deadLetters(of: other, count: 10).map(\.reason) == ["B: it broke too"])
        #expect(try await backend.size(of: queue).dead == 3, "a shared dead-letter queue counts whole")
        #expect(try await backend.size(of: QueueName("\(queue)--dead")).live == 0)
        // Requeueing and purging take a queue's own records only.
        #expect(try await backend.requeueDeadLetters(of: queue, count: 10) == 1)
        #expect(try await backend.size(of: queue).live == 1)
        #expect(try await backend.purgeDeadLetters(of: other) == 1)
        #expect(try await backend.deadLetters(of: other, count: 10).isEmpty)
        let left = try await backend.peek(graveyard, count: 10)
        #expect(left.map { String(decoding: $0.body, as: UTF8.self) } == ["raw"])
        await backend.close()
    }

    @Test func aDeadLetterRequeuedByIDFromASharedDeadLetterQueueIsTheQueuesOwnAndTheRestKeepTheirOrder()
        async throws
    {
        let (backend, queue) = try await open()
        let other = try QueueName("\(queue)-b")
        let graveyard = try QueueName("\(queue)-graveyard")
        for name in [queue, other] { try await setDeadLetterQueue(of: name, to: graveyard.rawValue) }
        var ids: [QueueName: String] = [:]
        for name in [queue, other] {
            _ = try await backend.send(Array(#"{"name":"x.y","args":["\#(name)"]}"#.utf8), to: name)
            let reservation = try #require(
                try await backend.reserve(from: name, count: 1, visibility: .seconds(30), wait: .seconds(5))
                    .first)
            ids[name] = reservation.messageID
            try await backend.deadLetter(reservation, reason: "dead")
        }
        _ = try await backend.send(Array("raw".utf8), to: graveyard)
        let before = try await backend.peek(graveyard, count: 10).map(\.body)
        #expect(before.count == 3)

        // Another queue's dead letter, although it waits in the same place, is not this queue's.
        let othersID = try #require(ids[other])
        #expect(try await backend.requeueDeadLetter(of: queue, messageID: othersID) == false)
        #expect(try await backend.peek(graveyard, count: 10).map(\.body) == before, "the order changed")
        #expect(try await backend.requeueDeadLetter(of: queue, messageID: try #require(ids[queue])))
        #expect(try await backend.peek(graveyard, count: 10).map(\.body) == Array(before.dropFirst()))
        #expect(try await backend.deadLetters(of: other, count: 10).map(\.messageID) == [othersID])
        #expect(try await backend.size(of: queue).live == 1)
        #expect(try await backend.size(of: other).live == 0)
        await backend.close()
    }

    @Test func aSearchForADeadLetterLooksAtNoMoreThanItsBoundAndSaysWhenItGaveUp() async throws {
        let logger = RecordingLogger()
        let backend: IronMQBackend
        do {
            backend = try await IronMQBackend.connect(
                configuration: try IronMQConfiguration(url: Services.ironMQURL), maximumMessageSize: 64 << 10,
                logger: logger, deadLetterScanLimit: 2)
        } catch {
            try Services.unavailable("IronMQ at \(Redaction.redact(url: Services.ironMQURL))", error)
        }
        let queue = try QueueName("im-\(UUID().uuidString.prefix(8).lowercased())")
        var ids: [String] = []
        for body in ["first", "second", "third"] {
            _ = try await backend.send(Array(#"{"name":"x.y","args":["\#(body)"]}"#.utf8), to: queue)
            let reservation = try #require(
                try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                    .first)
            ids.append(reservation.messageID)
            try await backend.deadLetter(reservation, reason: "dead")
        }
        let deadQueue = try QueueName("\(queue)--dead")
        let before = try await backend.peek(deadQueue, count: 10)

        #expect(try await backend.requeueDeadLetter(of: queue, messageID: ids[2]) == false)
        #expect(logger.count(containing: "not among the first 2 messages") == 1, "\(logger.text)")
        // IronMQ counts reservations: the third was never reserved, and the others were put back
        // in their order.
        let after = try await backend.peek(deadQueue, count: 10)
        #expect(after.map(\.messageID) == before.map(\.messageID))
        #expect(after.map(\.deliveryCount) == [1, 1, 0])
        // A deletion searches as far, and says so.
        #expect(try await backend.deleteDeadLetter(of: queue, messageID: ids[2]) == false)
        #expect(
            logger.count(containing: "to delete is not among the first 2 messages") == 1, "\(logger.text)")
        // Within the bound, found and moved, then found and deleted.
        #expect(try await backend.requeueDeadLetter(of: queue, messageID: ids[1]))
        #expect(logger.count(containing: "not among") == 2)
        #expect(try await backend.deadLetters(of: queue, count: 10).map(\.messageID) == [ids[0], ids[2]])
        #expect(try await backend.deleteDeadLetter(of: queue, messageID: ids[0]))
        #expect(try await backend.deadLetters(of: queue, count: 10).map(\.messageID) == [ids[2]])
        #expect(try await backend.purgeDeadLetters(of: queue) == 1)
        #expect(try await backend.purge(queue) == 1)
        await backend.close()
    }

    /// Sets the queue's `dead_letter` with IronMQ's own request (PATCH-like PUT of its settings).
    private func setDeadLetterQueue(of queue: QueueName, to target: String) async throws {
        let configuration = try IronMQConfiguration(url: Services.ironMQURL)
        let url = try #require(
            URL(
                string:
                    "http://\(configuration.host):\(configuration.port)/3/projects/\(configuration.projectID)/queues/\(queue)"
            ))
        var request = URLRequest(url: url)
        request.httpMethod = "PUT"
        request.setValue("OAuth \(configuration.token.exposedValue)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(
            #"{"queue":{"dead_letter":{"queue_name":"\#(target)","max_reservations":1000}}}"#.utf8)
        let (_, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
    }
}
