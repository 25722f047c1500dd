// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Dispatch
import Foundation
import IvyAMQP
import IvyCore
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The connection against a real RabbitMQ (`IVY_AMQP_URL`, else the node `make services-up`
/// starts). Each test uses queues of its own, named after a fresh UUID, so tests run in parallel.
@Suite("AMQP connection")
struct AMQPConnectionTests {
    private func configuration() throws -> AMQPConfiguration {
        try AMQPConfiguration(url: Services.amqpURL)
    }

    /// A connection, or a skipped (by hand) or failed (`IVY_REQUIRE_SERVICES=1`) test.
    private func open(
        _ configuration: AMQPConfiguration? = nil, name: String = "ivy-test-\(UUID().uuidString.prefix(8))",
        onClosed: @escaping @Sendable (IvyError) -> Void = { _ in }
    ) async throws -> AMQPConnection {
        do {
            return try await AMQPConnection.open(
                try configuration ?? self.configuration(), name: name, generation: 7, onClosed: onClosed)
        } catch {
            try Services.unavailable("RabbitMQ at \(Redaction.redact(url: Services.amqpURL))", error)
        }
    }

    private func freshQueue() -> String { "ivy-test-\(UUID().uuidString)" }

    /// Deliveries as a stream, for a consumer's callback.
    private func deliveries() -> (AsyncStream<AMQPDelivery>, @Sendable (AMQPDelivery) -> Void) {
        let (stream, continuation) = AsyncStream<AMQPDelivery>.makeStream()
        return (stream, { continuation.yield($0) })
    }

    private func next(_ stream: AsyncStream<AMQPDelivery>, _ what: String) async throws -> AMQPDelivery {
        try await withDeadline(.seconds(20), what) {
            for await delivery in stream { return delivery }
            throw DeadlineExceeded(limit: .seconds(20), what: "\(what) (stream ended)")
        }
    }

    @Test func opensAndCloses() async throws {
        let connection = try await open()
        #expect(connection.isAlive)
        #expect(connection.generation == 7)
        #expect(!connection.endpoint.contains("ivy-test-password"))
        await connection.close()
        #expect(!connection.isAlive)
        await #expect {
            try await connection.declareQueue(freshQueue())
        } throws: { ($0 as? IvyError)?.code == .closed }
        await connection.close()  // twice is fine
    }
}

// MARK: Opening

extension AMQPConnectionTests {
    @Test func aWrongPasswordIsATypedErrorWithTheBrokersReasonAndWithoutThePassword() async throws {
        try await open().close()  // skipped without a broker
        var configuration = try configuration()
        let password = "wrong-\(UUID().uuidString)"
        configuration.password = Secret(password)
        let error = try await #require(throws: IvyError.self) {
            try await AMQPConnection.open(configuration, name: "ivy-test-wrong-password")
        }
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.contains("ACCESS_REFUSED") == true)
        #expect(error.detail?.contains("\"\(configuration.user)\"") == true)
        #expect(!"\(error)".contains(password))
        #expect(!String(reflecting: error).contains(password))
    }

    @Test func anUnknownVirtualHostIsATypedErrorNamingIt() async throws {
        try await open().close()
        var configuration = try configuration()
        configuration.virtualHost = "ivy-test-no-such-vhost-\(UUID().uuidString.prefix(8))"
        let error = try await #require(throws: IvyError.self) {
            try await AMQPConnection.open(configuration, name: "ivy-test-unknown-vhost")
        }
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.contains(configuration.virtualHost) == true)
        #expect(error.detail?.contains("NOT_ALLOWED") == true)
    }

    @Test func aRefusedConnectionIsATypedError() async throws {
        var configuration = try AMQPConfiguration(url: "amqp://ivy:secret-password@127.0.0.1/ivytest")
        configuration.port = try Self.closedPort()
        let error = try await #require(throws: IvyError.self) {
            try await AMQPConnection.open(configuration, name: "ivy-test-refused")
        }
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.contains("cannot connect") == true)
        #expect(!"\(error)".contains("secret-password"))
    }

    /// A loopback port nothing listens on: bound, read and released.
    private static func closedPort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(socket >= 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(socket, address, length) == 0 && getsockname(socket, address, &length) == 0
            }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

// MARK: Publishing and consuming

extension AMQPConnectionTests {
    @Test func aConfirmedMessageArrivesWhole_andIsGoneAfterItsAck() async throws {
        let connection = try await open()
        let queue = freshQueue()
        try await connection.declareQueue(queue, arguments: ["x-expires": 120_000])
        let (stream, onDelivery) = deliveries()
        let tag = try await connection.consume(queue, prefetch: 10, onDelivery: onDelivery)
        let body = Array("{\"task\": \"héllo\"}".utf8) + [0, 255]
        try await connection.publish(
            body: body, routingKey: queue,
            headers: ["ivy-task": "tests.hello", "attempt": 3, "urgent": true, "big": .integer(.max)],
            messageID: "message-1")
        let delivery = try await next(stream, "the delivery")
        #expect(delivery.body == body)
        #expect(delivery.messageID == "message-1")
        #expect(
            delivery.headers == [
                "ivy-task": "tests.hello", "attempt": 3, "urgent": true, "big": .integer(.max),
            ])
        #expect(delivery.consumerTag == tag)
        #expect(delivery.queue == queue && delivery.routingKey == queue && delivery.exchange == "")
        #expect(!delivery.redelivered)
        #expect(delivery.deliveryCount == nil)
        #expect(delivery.generation == 7)
        try await connection.ack(deliveryTag: delivery.deliveryTag)
        // Settled once: a second ack is refused here instead of closing channel 1 at the broker.
        await #expect {
            try await connection.ack(deliveryTag: delivery.deliveryTag)
        } throws: { ($0 as? IvyError)?.code == .reservationLost }
        // Unacked messages would return to the queue when their connection closes.
        await connection.close()
        let other = try await open()
        #expect(try await other.declareQueue(queue, passive: true) == (messages: 0, consumers: 0))
        try await other.deleteQueue(queue)
        await other.close()
    }

    @Test(arguments: ["classic", "quorum"])
    func aRejectedMessageComesBackRedelivered(queueType: String) async throws {
        let connection = try await open()
        let queue = freshQueue()
        try await connection.declareQueue(queue, arguments: ["x-queue-type": .string(queueType)])
        let (stream, onDelivery) = deliveries()
        _ = try await connection.consume(queue, prefetch: 1, onDelivery: onDelivery)
        try await connection.publish(body: [1, 2, 3], routingKey: queue, messageID: "again")
        let first = try await next(stream, "the first delivery")
        #expect(!first.redelivered && first.deliveryCount == nil)
        try await connection.reject(deliveryTag: first.deliveryTag, requeue: true)
        let second = try await next(stream, "the redelivery")
        #expect(second.redelivered)
        #expect(second.messageID == "again" && second.body == [1, 2, 3])
        // Quorum queues count deliveries in a header; classic queues do not count.
        #expect(second.deliveryCount == (queueType == "quorum" ? 1 : nil))
        try await connection.ack(deliveryTag: second.deliveryTag)
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func getTakesOneMessageAndReportsAnEmptyQueue() async throws {
        let connection = try await open()
        let queue = freshQueue()
        try await connection.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
        #expect(try await connection.get(queue) == nil)
        try await connection.publish(body: [7], routingKey: queue, headers: ["n": 1], messageID: "got")
        let got = try #require(try await connection.get(queue))
        #expect(got.body == [7] && got.messageID == "got" && got.consumerTag == nil)
        #expect(got.headers["n"] == 1)
        #expect(got.queue == queue && !got.redelivered)
        // RabbitMQ 3.10's quorum queues count from 0 in `basic.get`'s header (consumers see none).
        #expect(got.deliveryCount ?? 0 == 0)
        try await connection.reject(deliveryTag: got.deliveryTag, requeue: true)
        let again = try #require(try await connection.get(queue))
        #expect(again.redelivered && again.deliveryCount == 1)
        #expect(again.headers["n"] == 1)
        try await connection.ack(deliveryTag: again.deliveryTag)
        #expect(try await connection.get(queue) == nil)
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func aMessageNoQueueTakesFailsItsPublishInsteadOfVanishing() async throws {
        let connection = try await open()
        let missing = freshQueue()
        let error = try await #require(throws: IvyError.self) {
            try await connection.publish(body: [1], routingKey: missing, messageID: "lost")
        }
        #expect(error.code == .commandFailed)
        #expect(error.detail?.contains("NO_ROUTE") == true)
        #expect(error.detail?.contains(missing) == true)
        // The connection goes on.
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        try await connection.publish(body: [2], routingKey: queue, messageID: "kept")
        #expect(try await connection.declareQueue(queue, passive: true).messages == 1)
        try await connection.deleteQueue(queue)
        #expect(connection.isAlive)
        await connection.close()
    }

    @Test func aThousandConcurrentPublishesAreAllConfirmed() async throws {
        let connection = try await open()
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<1000 {
                group.addTask {
                    try await connection.publish(
                        body: Array("message \(index)".utf8), routingKey: queue, messageID: "m-\(index)")
                }
            }
            try await group.waitForAll()
        }
        #expect(try await connection.declareQueue(queue, passive: true).messages == 1000)
        #expect(try await connection.purge(queue) == 1000)
        try await connection.deleteQueue(queue)
        await connection.close()
    }
}

// MARK: Channel 2

extension AMQPConnectionTests {
    @Test func aPassiveDeclareOfAMissingQueueFailsAloneAndTheConnectionGoesOn() async throws {
        let connection = try await open()
        let missing = freshQueue()
        let error = try await #require(throws: IvyError.self) {
            try await connection.declareQueue(missing, passive: true)
        }
        #expect(error.code == .commandFailed)
        #expect(error.detail?.contains("NOT_FOUND") == true && error.detail?.contains(missing) == true)
        #expect(connection.isAlive)
        // Channel 2 is open again; channel 1 never closed.
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        try await connection.publish(body: [1], routingKey: queue, messageID: "after")
        #expect(try await connection.declareQueue(queue, passive: true).messages == 1)
        // get and consume check their queue on channel 2 first, so channel 1 survives them too.
        await #expect {
            try await connection.get(missing)
        } throws: { ($0 as? IvyError)?.code == .commandFailed }
        await #expect {
            try await connection.consume(missing, prefetch: 1) { _ in }
        } throws: { ($0 as? IvyError)?.code == .commandFailed }
        #expect(try await connection.get(queue)?.messageID == "after")
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func requestsBehindARefusedOneAreSentAgainAfterChannel2Reopens() async throws {
        let connection = try await open()
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        // Handed over together, so that some follow a refused one on the wire.
        let outcomes = await withTaskGroup(of: (Bool, Bool).self) { group in
            for index in 0..<60 {
                group.addTask {
                    let exists = index % 3 != 0
                    let name = exists ? queue : "\(queue)-missing-\(index)"
                    let succeeded = (try? await connection.declareQueue(name, passive: true)) != nil
                    return (exists, succeeded)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == 60)
        #expect(outcomes.allSatisfy { $0.0 == $0.1 })
        #expect(connection.isAlive)
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func theBrokerCancelsAConsumerWhoseQueueIsDeleted() async throws {
        let connection = try await open()
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        let (cancelled, cancel) = AsyncStream<Void>.makeStream()
        _ = try await connection.consume(
            queue, prefetch: 1, onDelivery: { _ in }, onCancel: { cancel.yield() })
        try await connection.deleteQueue(queue)
        try await withDeadline(.seconds(20), "the consumer's cancellation") {
            for await _ in cancelled { return }
        }
        #expect(connection.isAlive)
        await connection.close()
    }
}

// MARK: Heartbeats and ends

extension AMQPConnectionTests {
    @Test func withOneSecondHeartbeatsAnIdleConnectionStaysOpen() async throws {
        var configuration = try configuration()
        configuration.heartbeat = .seconds(1)
        let closed = Locked<IvyError?>(nil)
        let connection = try await open(configuration) { error in closed.withLock { $0 = error } }
        // The behaviour under test is idleness itself: the broker drops a connection whose
        // heartbeats stop for two intervals (here 2 s).
        try await Task.sleep(for: .seconds(5))
        #expect(connection.isAlive)
        #expect(closed.value == nil)
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        try await connection.publish(body: [1], routingKey: queue, messageID: "alive")
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func closingFailsAPendingPublishWithClosed() async throws {
        let connection = try await open()
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        // The connection's thread is held inside a delivery callback, so that the publish below
        // is still waiting in its inbox when the close arrives.
        let held = ThreadHold()
        _ = try await connection.consume(queue, prefetch: 1) { _ in held.enterAndWait() }
        connection.publish(body: [1], routingKey: queue, messageID: "first") { _ in }
        try await held.waitUntilEntered()
        let outcome = Locked<Result<Void, IvyError>?>(nil)
        let (finished, finish) = AsyncStream<Void>.makeStream()
        connection.publish(body: [2], routingKey: queue, messageID: "pending") { result in
            outcome.withLock { $0 = result }
            finish.yield()
        }
        let closing = Task { await connection.close() }
        try await withDeadline(.seconds(20), "the close to begin") {
            while connection.isAlive { await Task.yield() }
        }
        held.release()
        try await withDeadline(.seconds(20), "the pending publish to fail") {
            for await _ in finished { return }
        }
        await closing.value
        guard case .failure(let error) = try #require(outcome.value) else {
            Issue.record("the pending publish succeeded")
            return
        }
        #expect(error.code == .closed)
        let cleanup = try await open()
        try await cleanup.deleteQueue(queue)
        await cleanup.close()
    }

    @Test func theBrokerClosingTheConnectionFailsWhatIsPendingAndCallsOnClosed() async throws {
        let name = "ivy-test-forced-\(UUID().uuidString.prefix(8))"
        let (closedStream, closedContinuation) = AsyncStream<IvyError>.makeStream()
        let connection = try await open(name: name) { closedContinuation.yield($0) }
        let pid: String
        do { pid = try await Services.rabbitMQConnectionPid(named: name) } catch {
            try Services.unavailable("rabbitmqctl for the node of scripts/services.sh", error)
        }
        let queue = freshQueue()
        try await connection.declareQueue(queue, arguments: ["x-expires": 60_000])
        // A delivery left unsettled, and a publish held in the inbox while the broker closes.
        let held = ThreadHold()
        let (stream, onDelivery) = deliveries()
        _ = try await connection.consume(queue, prefetch: 1) { delivery in
            onDelivery(delivery)
            held.enterAndWait()
        }
        connection.publish(body: [1], routingKey: queue, messageID: "delivered") { _ in }
        let delivery = try await next(stream, "the delivery")
        try await held.waitUntilEntered()
        let outcome = Locked<Result<Void, IvyError>?>(nil)
        let (finished, finish) = AsyncStream<Void>.makeStream()
        connection.publish(body: [2], routingKey: queue, messageID: "pending") { result in
            outcome.withLock { $0 = result }
            finish.yield()
        }
        _ = try await Services.rabbitmqctl(["close_connection", pid, "ivy test: closed by the broker"])
        held.release()
        let closedError = try await withDeadline(.seconds(20), "onClosed") {
            for await error in closedStream { return error }
            throw DeadlineExceeded(limit: .seconds(20), what: "onClosed (stream ended)")
        }
        #expect(closedError.code == .connectionFailed)
        #expect(closedError.detail?.contains("CONNECTION_FORCED") == true)
        #expect(closedError.detail?.contains("ivy test: closed by the broker") == true)
        #expect(!connection.isAlive)
        try await withDeadline(.seconds(20), "the pending publish to fail") {
            for await _ in finished { return }
        }
        guard case .failure(let error) = try #require(outcome.value) else {
            Issue.record("the pending publish succeeded")
            return
        }
        #expect(error.code == .connectionFailed)
        await #expect {
            try await connection.ack(deliveryTag: delivery.deliveryTag)
        } throws: { ($0 as? IvyError)?.code == .reservationLost }
        await #expect {
            try await connection.publish(body: [3], routingKey: queue, messageID: "late")
        } throws: { ($0 as? IvyError)?.code == .connectionFailed }
        await connection.close()
        let other = try await open()
        try await other.deleteQueue(queue)
        await other.close()
    }
}

extension AMQPConnectionTests {
    /// Whether `host` resolves to an address.
    fileprivate static func resolves(_ host: String) -> Bool {
        var result: UnsafeMutablePointer<addrinfo>?
        defer { if let result { freeaddrinfo(result) } }
        return getaddrinfo(host, nil, nil, &result) == 0 && result != nil
    }
}

/// Holds a connection's thread inside a callback until the test releases it: a deterministic
/// way to have commands wait in its inbox. (Callbacks must never block; this one does so on
/// purpose.)
private final class ThreadHold: Sendable {
    private let released = DispatchSemaphore(value: 0)
    private let entered: AsyncStream<Void>
    private let enter: AsyncStream<Void>.Continuation
    private let isFirst = Locked(true)

    init() { (entered, enter) = AsyncStream<Void>.makeStream() }

    /// On the connection's thread: the first call blocks until ``release()``; later ones pass.
    func enterAndWait() {
        let first = isFirst.withLock { isFirst in
            defer { isFirst = false }
            return isFirst
        }
        guard first else { return }
        enter.yield()
        released.wait()
    }

    func waitUntilEntered() async throws {
        try await withDeadline(.seconds(20), "a delivery callback") {
            for await _ in self.entered { return }
        }
    }

    func release() { released.signal() }
}

// MARK: TLS

/// The broker's TLS listener (`Services.amqpsURL`): by default the node's, whose certificate is for
/// IP:127.0.0.1 only and signed by the throwaway CA that `scripts/services.sh up` makes, named by
/// the URL's `cacertfile`. Another broker's certificate must be for its host (a DNS name, or an IP
/// address as an IP SAN) and not for `localhost` or `127.0.0.1`, whichever the URL does not name.
extension AMQPConnectionTests {
    private func tlsConfiguration() throws -> AMQPConfiguration {
        try AMQPConfiguration(url: Services.amqpsURL)
    }

    /// A TLS connection, or a skipped (by hand) or failed (`IVY_REQUIRE_SERVICES=1`) test.
    private func openTLS(_ configuration: AMQPConfiguration? = nil) async throws -> AMQPConnection {
        do {
            return try await AMQPConnection.open(
                try configuration ?? tlsConfiguration(), name: "ivy-test-tls-\(UUID().uuidString.prefix(8))")
        } catch {
            try Services.unavailable(
                "RabbitMQ's TLS listener at \(Redaction.redact(url: Services.amqpsURL))", error)
        }
    }

    @Test func tlsCarriesAConfirmedMessageToAConsumer() async throws {
        let connection = try await openTLS()
        let queue = freshQueue()
        try await connection.declareQueue(queue)
        let (stream, onDelivery) = deliveries()
        _ = try await connection.consume(queue, prefetch: 1, onDelivery: onDelivery)
        let body = [UInt8](repeating: 42, count: 300_000)  // several frames and TLS records
        try await connection.publish(body: body, routingKey: queue, messageID: "secret")
        let delivery = try await next(stream, "the delivery over TLS")
        #expect(delivery.body == body)
        #expect(delivery.messageID == "secret")
        #expect(!delivery.redelivered)
        try await connection.ack(deliveryTag: delivery.deliveryTag)
        try await connection.deleteQueue(queue)
        await connection.close()
    }

    @Test func tlsRefusesACertificateThatAnotherCASigned() async throws {
        try await openTLS().close()  // skipped without a broker
        var configuration = try tlsConfiguration()
        configuration.caCertificateFile = Services.amqpsWrongCA
        let error = try await #require(throws: IvyError.self) {
            try await AMQPConnection.open(configuration, name: "ivy-test-tls-wrong-ca")
        }
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.contains("cert verification failed") == true)
        #expect(!"\(error)".contains(configuration.password.exposedValue))
        #expect(!String(reflecting: error).contains(configuration.password.exposedValue))
    }

    @Test func tlsWithoutACAFileTrustsTheSystemsStoreOnly() async throws {
        try await openTLS().close()
        var configuration = try tlsConfiguration()
        configuration.caCertificateFile = nil  // the system's store does not know the test CA
        let error = try await #require(throws: IvyError.self) {
            try await AMQPConnection.open(configuration, name: "ivy-test-tls-untrusted")
        }
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.contains("verif") == true)
    }

    @Test func tlsChecksTheBrokersHostName() async throws {
        try await openTLS().close()
        var configuration = try tlsConfiguration()
        configuration.host = configuration.host == "localhost" ? "127.0.0.1" : "localhost"
        // A name the certificate does not have, for the same address: "localhost", which a
        // minimal system (a fresh chroot) may not resolve at all.
        if configuration.host == "localhost" && !Self.resolves("localhost") {
            try Test.cancel("\"localhost\" does not resolve on this machine (no /etc/hosts entry)")
        }
        let error = try await #require(throws: IvyError.self) {
            try await AMQPConnection.open(configuration, name: "ivy-test-tls-misnamed")
        }
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.contains("verification failed") == true)
    }

    @Test func tlsToAPlainAMQPPortFailsWithinTheConnectTimeout() async throws {
        try await openTLS().close()
        let plain = try configuration()
        var configuration = try tlsConfiguration()
        configuration.host = plain.host
        configuration.port = plain.port
        configuration.connectTimeout = .seconds(5)
        let tls = configuration
        // The deadline only names a hang: the open must end by itself, within its timeout.
        let error = try await #require(throws: IvyError.self) {
            try await withDeadline(.seconds(30), "the open to fail") {
                try await AMQPConnection.open(tls, name: "ivy-test-tls-plain-port")
            }
        }
        #expect(error.code == .connectionFailed)
        // The broker answers a TLS hello with AMQP's protocol header and closes the socket.
        #expect(error.detail?.contains("SSL handshake failed") == true)
        #expect(!"\(error)".contains(configuration.password.exposedValue))
    }
}
