// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyTestSupport
import Testing

@testable import IvyAMQP

/// What the AMQP backend adds to the conformance suite: a lost connection, a recycled one, a wrong
/// password at start-up through the `ivy` binary, and the layout other implementations read.
@Suite("AMQP backend")
struct AMQPBackendTests {
    private func freshQueue() throws -> QueueName {
        try QueueName("ab-\(UUID().uuidString.prefix(8).lowercased())")
    }

    private func connect(_ query: String = "queue_type=quorum", name: String = "ivy-test") async throws
        -> AMQPBackend
    {
        let url = Services.amqpURL + (Services.amqpURL.contains("?") ? "&" : "?") + query
        do { return try await AMQPBackend.connect(url: url, name: name, logger: SilentLogger()) } catch {
            try Services.unavailable("RabbitMQ at \(Redaction.redact(url: url))", error)
        }
    }

    @Test func aLostConnectionLosesItsReservationsAndTheBackendComesBackByItself() async throws {
        let name = "ivy-test-lost-\(UUID().uuidString.prefix(8))"
        let backend = try await connect(name: name)
        let queue = try freshQueue()
        _ = try await backend.send(Array("again".utf8), to: queue)
        let first = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(60), wait: .seconds(10))
                .first)
        #expect(first.deliveryCount == 1)
        let pid: String
        do { pid = try await Services.rabbitMQConnectionPid(named: "\(name)-1") } catch {
            try Services.unavailable("rabbitmqctl for the node of scripts/services.sh", error)
        }
        _ = try await Services.rabbitmqctl(["close_connection", pid, "ivy test: connection lost"])
        // The broker gives the message back; the next reserve opens a new connection and gets it.
        let again = try await withDeadline(.seconds(30), "the message to come back on a new connection") {
            while true {
                if let reservation = try await backend.reserve(
                    from: queue, count: 1, visibility: .seconds(60), wait: .seconds(5)
                ).first {
                    return reservation
                }
            }
        }
        #expect(again.messageID == first.messageID)
        #expect(again.body == first.body)
        #expect(again.deliveryCount == 2)
        let stale = await #expect(throws: IvyError.self) { try await backend.ack(first) }
        #expect(stale?.code == .reservationLost)
        try await backend.ack(again)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        await backend.close()
    }

    @Test func aRecycledConnectionStillSettlesTheDeliveriesItMade() async throws {
        // A connection replaced after 0.2 s, which keeps settling for a minute.
        let backend = try await connect("queue_type=quorum&recycle=0.2&retirement=60")
        let queue = try freshQueue()
        _ = try await backend.send(Array("old".utf8), to: queue)
        let old = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(60), wait: .seconds(10))
                .first)
        // Time is what this test is about: the connection must grow older than its recycle interval.
        try await Task.sleep(for: .milliseconds(300))
        _ = try await backend.send(Array("new".utf8), to: queue)
        let new = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(60), wait: .seconds(10))
                .first)
        #expect(new.body == Array("new".utf8))
        try await backend.ack(old)
        try await backend.ack(new)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        await backend.close()
    }

    @Test func closingGivesBackWhatItsConsumerReceivedWithoutCountingADelivery() async throws {
        let first = try await connect()
        let second = try await connect()
        let queue = try freshQueue()
        // The first backend's consumer (started by a reserve that waits) takes up to five, and
        // nothing reserves them.
        #expect(
            try await first.reserve(from: queue, count: 5, visibility: .seconds(60), wait: .milliseconds(50))
                .isEmpty)
        let sent = try await second.send(batch: ["a", "b", "c"].map { Array($0.utf8) }, to: queue)
        try await withDeadline(.seconds(30), "the consumer to receive all three") {
            while try await second.size(of: queue).ready > 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        await first.close()
        // A quorum queue would count a delivery for each had they been returned by the close.
        var received: [Reservation<AMQPBackend.Receipt>] = []
        while received.count < 3 {
            let batch = try await second.reserve(
                from: queue, count: 3, visibility: .seconds(60), wait: .seconds(10))
            try #require(!batch.isEmpty, "the given-back messages did not come")
            received += batch
        }
        #expect(Set(received.map(\.messageID)) == Set(sent))
        #expect(received.allSatisfy { $0.deliveryCount == 1 })
        for reservation in received { try await second.ack(reservation) }
        await second.close()
    }

    @Test func aConsumerNobodyReservesFromGivesBackWhatItReceived() async throws {
        // A worker stopped on a connection its process keeps: its consumer goes idle.
        let url = Services.amqpURL + (Services.amqpURL.contains("?") ? "&" : "?") + "queue_type=quorum"
        let idle: AMQPBackend
        let log = RecordingLogger()
        do {
            idle = try await AMQPBackend.connect(
                configuration: try AMQPConfiguration(url: url), maximumMessageSize: 1 << 20,
                name: "ivy-test-idle",
                logger: log, idleConsumerLimit: .milliseconds(400))
        } catch {
            try Services.unavailable("RabbitMQ at \(Redaction.redact(url: url))", error)
        }
        let other = try await connect()
        let queue = try freshQueue()
        #expect(
            try await idle.reserve(from: queue, count: 5, visibility: .seconds(60), wait: .milliseconds(50))
                .isEmpty)
        let sent = try await other.send(batch: ["a", "b"].map { Array($0.utf8) }, to: queue)
        // Another consumer gets them, uncounted, once the idle one gave them back.
        let received = try await withDeadline(.seconds(30), "the idle consumer to give the messages back") {
            var received: [Reservation<AMQPBackend.Receipt>] = []
            while received.count < 2 {
                received += try await other.reserve(
                    from: queue, count: 2, visibility: .seconds(60), wait: .seconds(5))
            }
            return received
        }
        #expect(Set(received.map(\.messageID)) == Set(sent))
        // What the idle consumer had received goes back as uncounted copies. What the broker was
        // still delivering when the cancel came, it returns itself, counted once (a quorum
        // queue: RabbitMQ's choice, on a busy machine).
        let copied = Set(
            log.text.filter { $0.hasPrefix("gave back what an idle consumer received") }.flatMap { line in
                line.split(separator: " ").filter { $0.hasPrefix("messages=") }
                    .flatMap { $0.dropFirst("messages=".count).split(separator: ",").map(String.init) }
            })
        #expect(
            received.allSatisfy {
                copied.contains($0.messageID) ? $0.deliveryCount == 1 : $0.deliveryCount <= 2
            },
            "\(received.map { ($0.messageID, $0.deliveryCount) }); the idle backend logged: \(log.text)")
        for reservation in received { try await other.ack(reservation) }
        await idle.close()
        await other.close()
    }

    @Test func deadLettersCarryTheirReasonInHeadersThatOtherImplementationsRead() async throws {
        let backend = try await connect()
        let queue = try freshQueue()
        _ = try await backend.send(Array("poison".utf8), to: queue)
        let reservation = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(60), wait: .seconds(10))
                .first)
        let reason = String(repeating: "é", count: 6000)  // 12,000 bytes: cut to 8 KiB
        try await backend.deadLetter(reservation, reason: reason)
        let letter = try #require(try await backend.deadLetters(of: queue, count: 1).first)
        #expect(letter.body == Array("poison".utf8))
        #expect(letter.messageID == reservation.messageID)
        #expect(
            letter.reason.utf8.count <= 8192 && letter.reason.hasPrefix("éé") && letter.reason.hasSuffix("…"))
        #expect(letter.deliveryCount == 1)
        #expect(abs(letter.deadLetteredAt.timeIntervalSinceNow) < 3600)
        // As another implementation reads it (PROTOCOL.md §9).
        let connection = try await AMQPConnection.open(try AMQPConfiguration(url: Services.amqpURL))
        let raw = try #require(try await connection.get("\(queue).dead"))
        #expect(raw.messageID == reservation.messageID)
        #expect(raw.headers["x-ivy-queue"] == .string(queue.rawValue))
        #expect(raw.headers["x-ivy-reason"]?.string == letter.reason)
        #expect(raw.headers["x-ivy-deliveries"] == .integer(1))
        #expect(raw.headers["x-ivy-dead-lettered-at"]?.integer != nil)
        try await connection.reject(deliveryTag: raw.deliveryTag, requeue: true)
        await connection.close()
        #expect(try await backend.purgeDeadLetters(of: queue) == 1)
        await backend.close()
    }

    /// Dead-letters a message for each of `bodies`, in that order; returns their message ids.
    private func makeDeadLetters(_ bodies: [String], in backend: AMQPBackend, _ queue: QueueName)
        async throws -> [String]
    {
        var ids: [String] = []
        for body in bodies {
            ids.append(try await backend.send(Array(body.utf8), to: queue))
            let reservation = try #require(
                try await backend.reserve(from: queue, count: 1, visibility: .seconds(60), wait: .seconds(10))
                    .first)
            try await backend.deadLetter(reservation, reason: "dead: \(body)")
        }
        return ids
    }

    @Test func aDeadLetterPastTheScanLimitIsNotFoundWithAWarningRatherThanAConnectionError() async throws {
        let url = Services.amqpURL + (Services.amqpURL.contains("?") ? "&" : "?") + "queue_type=classic"
        let logger = RecordingLogger()
        let backend: AMQPBackend
        do {
            backend = try await AMQPBackend.connect(
                configuration: try AMQPConfiguration(url: url), maximumMessageSize: 1 << 20,
                name: "ivy-test-scan",
                logger: logger, idleConsumerLimit: .seconds(30), deadLetterScanLimit: 2)
        } catch {
            try Services.unavailable("RabbitMQ at \(Redaction.redact(url: url))", error)
        }
        let queue = try freshQueue()
        let ids = try await makeDeadLetters(["first", "second", "third"], in: backend, queue)

        #expect(try await backend.requeueDeadLetter(of: queue, messageID: ids[2]) == false)
        #expect(logger.count(containing: "not among the first 2 dead letters") == 1, "\(logger.text)")
        #expect(Set(try await backend.deadLetters(of: queue, count: 10).map(\.messageID)) == Set(ids))
        // A deletion searches as far, and says so.
        #expect(try await backend.deleteDeadLetter(of: queue, messageID: ids[2]) == false)
        #expect(
            logger.count(containing: "to delete is not among the first 2 dead letters") == 1, "\(logger.text)"
        )
        #expect(Set(try await backend.deadLetters(of: queue, count: 10).map(\.messageID)) == Set(ids))
        // Within the limit, found and moved, then found and deleted.
        #expect(try await backend.requeueDeadLetter(of: queue, messageID: ids[1]))
        try await expectBack(ids[1], in: backend, queue)
        #expect(try await backend.deleteDeadLetter(of: queue, messageID: ids[0]))
        #expect(try await backend.deadLetters(of: queue, count: 10).map(\.messageID) == [ids[2]])
        #expect(try await backend.purgeDeadLetters(of: queue) == 1)
        await backend.close()
    }

    /// A quorum `q.dead` has no dead-letter queue of its own: past a delivery limit (RabbitMQ 4
    /// sets 20 by default; here a policy sets 2) the broker would drop a dead letter that every
    /// look counted as a delivery. Looks give letters back as copies, which count none.
    @Test func lookingAtQuorumDeadLettersAgainAndAgainLosesNoneToADeliveryLimit() async throws {
        let backend = try await connect()
        let queue = try freshQueue()
        let policy = "ivy-test-\(queue)"
        do {
            _ = try await Services.rabbitmqctl([
                "set_policy", "-p", "ivytest", "--apply-to", "queues", policy, "^\(queue)\\.dead$",
                #"{"delivery-limit":2}"#,
            ])
        } catch {
            try Services.unavailable("rabbitmqctl for the node of scripts/services.sh", error)
        }
        do {
            try await lookAgainAndAgain(backend, queue)
        } catch {
            _ = try? await Services.rabbitmqctl(["clear_policy", "-p", "ivytest", policy])
            await backend.close()
            throw error
        }
        _ = try await Services.rabbitmqctl(["clear_policy", "-p", "ivytest", policy])
        await backend.close()
    }

    private func lookAgainAndAgain(_ backend: AMQPBackend, _ queue: QueueName) async throws {
        let ids = try await makeDeadLetters(["first", "second"], in: backend, queue)
        for look in 1...4 {
            let letters = try await backend.deadLetters(of: queue, count: 10)
            #expect(Set(letters.map(\.messageID)) == Set(ids), "look \(look)")
            #expect(
                letters.allSatisfy { $0.deliveryCount == 1 && $0.reason.hasPrefix("dead: ") }, "look \(look)")
            // A search that passes them all is a look too.
            #expect(try await backend.requeueDeadLetter(of: queue, messageID: "no-such-id") == false)
        }
        #expect(try await backend.requeueDeadLetter(of: queue, messageID: ids[1]))
        try await expectBack(ids[1], in: backend, queue)
        #expect(try await backend.deadLetters(of: queue, count: 10).map(\.messageID) == [ids[0]])
        #expect(try await backend.purgeDeadLetters(of: queue) == 1)
    }

    /// Reserves the one message of `queue` (this backend's consumer may hold it, where a purge
    /// would not find it), expects `id`, and acks it.
    private func expectBack(_ id: String, in backend: AMQPBackend, _ queue: QueueName) async throws {
        let back = try await backend.reserve(
            from: queue, count: 10, visibility: .seconds(60), wait: .seconds(10))
        #expect(back.map(\.messageID) == [id])
        for reservation in back { try await backend.ack(reservation) }
    }

    @Test func aWrongPasswordIsAClearErrorAtStartUpThatDoesNotShowIt() async throws {
        let configuration = try AMQPConfiguration(url: Services.amqpURL)
        guard Services.accepts(host: configuration.host, port: configuration.port) else {
            _ = try await connect()  // skips or fails, as services require
            return
        }
        var wrong = URLComponents(string: Services.amqpURL)!
        wrong.password = "not-the-passw0rd"
        let worker = try IvyProcess(
            ["worker", "--queue", wrong.string!, "--notify", Services.redisURL, "--queues", "testpackage"])
        let finished = await worker.finish()
        #expect(finished.status != 0)
        #expect(finished.stderr.contains("ACCESS_REFUSED"), "stderr: \(finished.stderr)")
        #expect(!finished.stderr.contains("not-the-passw0rd"))
    }
}
