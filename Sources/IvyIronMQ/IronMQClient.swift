// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore
internal import Synchronization

/// The IronMQ v3 HTTP API, the requests the queue backend needs (Iron.io's docs repository,
/// `mq/3/reference/api/index.md`).
///
/// Requests fail over to a retry, with a backoff that doubles from 50 ms to 2 s (±50 %), on 503,
/// other 5xx answers and connection errors, up to ``IronMQConfiguration/attempts`` tries; 400,
/// 401, 403 and 404 are typed errors with the server's own message.
final class IronMQClient: Sendable {
    let configuration: IronMQConfiguration
    private let pool: CurlConnectionPool
    private let headers: [String]
    private let isClosed = Atomic<Bool>(false)

    init(configuration: IronMQConfiguration, name: String = "ivy-ironmq") {
        self.configuration = configuration
        pool = CurlConnectionPool(
            name: name, maximumConnections: 32, connectTimeout: configuration.connectTimeout,
            verifyTLS: configuration.scheme == "https")
        headers = ["Content-Type: application/json", "Accept: application/json"]
    }

    /// Long polls on their way (for tests).
    var longPollsInFlight: Int { pool.longPollsInFlight }

    /// Ends the connections; requests from now on fail at once with ``IvyError/Code/closed``.
    func close() {
        isClosed.store(true, ordering: .relaxed)
        pool.close()
    }

    // MARK: Messages

    struct PostedMessage: Sendable {
        let body: String
        let delay: Int?
    }

    // Posts, reservations and deletes, the requests of every task, write and read their JSON
    // with IvyCore's own writer and reader: through JSONEncoder and JSONDecoder they cost a
    // tenth of a worker's CPU (BENCHMARKS.md, IronMQ).

    /// Posts messages (at most 100); returns their ids in order.
    func post(_ messages: [PostedMessage], to queue: String) async throws -> [String] {
        var body = JSONWriter(capacity: messages.reduce(16) { $0 + $1.body.utf8.count + 24 })
        body.raw("{\"messages\":[")
        for (index, message) in messages.enumerated() {
            body.raw(index == 0 ? "{\"body\":" : ",{\"body\":")
            body.string(message.body)
            if let delay = message.delay {
                body.raw(",\"delay\":")
                body.integer(delay)
            }
            body.raw("}")
        }
        body.raw("]}")
        let path = "queues/\(queue)/messages"
        let answer = try await perform(.post, path, body.bytes, Call(idempotent: false))
        let ids = try parse(answer, of: .post, path) { answer throws(JSONObjectReader.Failure) in
            try answer.strings("ids")
        }
        guard ids.count == messages.count else {
            throw IvyError(
                .commandFailed, endpoint: configuration.endpoint,
                detail: "posted \(messages.count) messages, got \(ids.count) ids")
        }
        return ids
    }

    /// A message's `id`: a string, or a number as the docs' examples show it; nil otherwise.
    static func messageID(of message: JSONObjectReader) throws(JSONObjectReader.Failure) -> String? {
        guard let raw = message.raw("id"), let first = raw.first else { return nil }
        if first == UInt8(ascii: "\"") { return try message.string("id") }
        guard raw.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return String(decoding: raw, as: UTF8.self)
    }

    struct ReservedMessage: Sendable {
        let id: String
        let body: String
        let reservedCount: Int
        let reservationID: String

        /// One element of a reservation's `messages`; nil when a member is missing.
        init?(_ message: JSONObjectReader) throws(JSONObjectReader.Failure) {
            guard let id = try IronMQClient.messageID(of: message),
                let body = try message.string("body"),
                let reservedCount = try message.integer("reserved_count"),
                let reservationID = try message.string("reservation_id")
            else { return nil }
            self.id = id
            self.body = body
            self.reservedCount = reservedCount
            self.reservationID = reservationID
        }
    }

    /// Reserves up to `count` (≤ 100) messages for `timeout` seconds, long-polling up to `wait`;
    /// nil for a queue that does not exist, when `absentOn404`.
    func reserve(from queue: String, count: Int, timeout: Int, wait: Int, absentOn404: Bool) async throws
        -> [ReservedMessage]?
    {
        var body = JSONWriter(capacity: 48)
        body.raw("{\"n\":")
        body.integer(count)
        body.raw(",\"timeout\":")
        body.integer(timeout)
        body.raw(",\"wait\":")
        body.integer(wait)
        body.raw("}")
        let path = "queues/\(queue)/reservations"
        guard
            let answer = try await perform(
                .post, path, body.bytes,
                Call(absentOn404: absentOn404, isLongPoll: wait > 0, extraTime: .seconds(wait)))
        else { return nil }
        return try parse(answer, of: .post, path) { answer throws(JSONObjectReader.Failure) in
            try Self.elements(of: answer, ReservedMessage.init)
        }
    }

    /// Deletes a message: a reserved one with its reservation (a stale one is
    /// ``IvyError/Code/reservationLost``), one nobody reserved without.
    func delete(_ id: String, reservation: String?, from queue: String) async throws {
        var body = JSONWriter(capacity: 64)
        if let reservation {
            body.raw("{\"reservation_id\":")
            body.string(reservation)
            body.raw("}")
        } else {
            body.raw("{}")
        }
        _ = try await perform(
            .delete, "queues/\(queue)/messages/\(id)", body.bytes,
            Call(reservationCall: true, doneOn404AfterRetry: true))
    }

    /// Deletes reserved messages in one request. IronMQ deletes all or none: one stale
    /// reservation fails the request (``IvyError/Code/reservationLost``) and deletes nothing.
    func delete(_ reservations: [(id: String, reservation: String)], from queue: String) async throws {
        var body = JSONWriter(capacity: 16 + reservations.count * 96)
        body.raw("{\"ids\":[")
        for (index, reservation) in reservations.enumerated() {
            body.raw(index == 0 ? "{\"id\":" : ",{\"id\":")
            body.string(reservation.id)
            body.raw(",\"reservation_id\":")
            body.string(reservation.reservation)
            body.raw("}")
        }
        body.raw("]}")
        _ = try await perform(.delete, "queues/\(queue)/messages", body.bytes, Call(reservationCall: true))
    }

    /// Gives the reservation another `timeout` seconds; returns the new reservation id.
    func touch(_ id: String, reservation: String, timeout: Int, in queue: String) async throws -> String {
        struct Response: Decodable {
            let reservationID: String
            enum CodingKeys: String, CodingKey { case reservationID = "reservation_id" }
        }
        let response: Response = try await send(
            .post, "queues/\(queue)/messages/\(id)/touch",
            ["reservation_id": JSONValue.text(reservation), "timeout": .number(timeout)],
            Call(idempotent: false, reservationCall: true))
        return response.reservationID
    }

    /// Puts a reserved message back, visible after `delay` seconds.
    func release(_ id: String, reservation: String, delay: Int, in queue: String) async throws {
        let _: Acknowledged = try await send(
            .post, "queues/\(queue)/messages/\(id)/release",
            ["reservation_id": JSONValue.text(reservation), "delay": .number(delay)],
            Call(reservationCall: true))
    }

    struct PeekedMessage: Sendable {
        let id: String
        let body: String
        let reservedCount: Int?

        /// One element of a peek's `messages`; nil when the id or body is missing.
        init?(_ message: JSONObjectReader) throws(JSONObjectReader.Failure) {
            guard let id = try IronMQClient.messageID(of: message), let body = try message.string("body")
            else {
                return nil
            }
            self.id = id
            self.body = body
            reservedCount = try message.integer("reserved_count")
        }
    }

    /// The next `count` (≤ 100) messages without reserving them; none for a missing queue.
    func peek(_ queue: String, count: Int) async throws -> [PeekedMessage] {
        let path = "queues/\(queue)/messages?n=\(count)"
        guard let answer = try await perform(.get, path, nil, Call(absentOn404: true)) else { return [] }
        return try parse(answer, of: .get, path) { answer throws(JSONObjectReader.Failure) in
            try Self.elements(of: answer, PeekedMessage.init)
        }
    }

    /// The `messages` of an answer, each read by `read`; nil when one cannot be.
    private static func elements<Message>(
        of answer: JSONObjectReader, _ read: (JSONObjectReader) throws(JSONObjectReader.Failure) -> Message?
    ) throws(JSONObjectReader.Failure) -> [Message]? {
        guard let messages = try answer.objects("messages") else { return nil }
        var result: [Message] = []
        result.reserveCapacity(messages.count)
        for message in messages {
            guard let message = try read(message) else { return nil }
            result.append(message)
        }
        return result
    }

    struct QueueInfo: Decodable, Sendable {
        /// Every message not deleted.
        let size: Int?
        /// Where IronMQ moves a message reserved too often, if the queue says.
        let deadLetter: DeadLetterSetting?

        struct DeadLetterSetting: Decodable, Sendable {
            let queueName: String?
            enum CodingKeys: String, CodingKey { case queueName = "queue_name" }
        }

        enum CodingKeys: String, CodingKey {
            case size
            case deadLetter = "dead_letter"
        }
    }

    /// A queue's counts; nil when it does not exist.
    func info(_ queue: String) async throws -> QueueInfo? {
        struct Response: Decodable { let queue: QueueInfo }
        let response: Response? = try await sendOrAbsent(
            .get, "queues/\(queue)", Empty?.none, Call(absentOn404: true))
        return response?.queue
    }

    /// Lists one queue: a request every valid token and project answers, to check them.
    func checkCredentials() async throws {
        struct Response: Decodable {}
        let _: Response = try await send(.get, "queues?per_page=1", Empty?.none)
    }

    /// Creates a queue with the server's defaults (a queue that exists is left as it is).
    func create(_ queue: String) async throws {
        struct Request: Encodable { let queue: [String: Int] }
        let _: Acknowledged = try await send(.put, "queues/\(queue)", Request(queue: [:]))
    }

    /// Deletes a queue and its messages (a missing queue is no error).
    func deleteQueue(_ queue: String) async throws {
        let _: Acknowledged? = try await sendOrAbsent(
            .delete, "queues/\(queue)", Empty?.none, Call(absentOn404: true, doneOn404AfterRetry: true))
    }

    /// Deletes every message of a queue (a missing queue has none).
    func clear(_ queue: String) async throws {
        let _: Acknowledged? = try await sendOrAbsent(
            .delete, "queues/\(queue)/messages", Empty(), Call(absentOn404: true))
    }

    // MARK: Requests

    private struct Empty: Codable {}

    /// A string or a number: the values of the small request bodies written as dictionaries.
    private enum JSONValue: Encodable {
        case text(String)
        case number(Int)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .text(let text): try container.encode(text)
            case .number(let number): try container.encode(number)
            }
        }
    }
    private struct Acknowledged: Decodable {}

    /// How a request may be retried and how its failures read.
    private struct Call {
        /// Whether sending it twice does no harm (no duplicate message, no lost reservation id):
        /// then a 5xx or a lost answer is retried too, not only a 503 or a refused connection.
        var idempotent = true
        /// A delete, touch or release: 403 and 404 mean the reservation is gone.
        var reservationCall = false
        /// A 404 answers nil (a queue that does not exist yet) rather than throwing.
        var absentOn404 = false
        /// A 404 after a retry means an earlier try did it (a delete).
        var doneOn404AfterRetry = false
        var isLongPoll = false
        var extraTime: Duration = .zero
    }

    /// Sends one request, retrying what is worth it, and decodes the answer.
    private func send<Body: Encodable, Answer: Decodable>(
        _ method: HTTPRequest.Method, _ path: String, _ body: Body?, _ call: Call = Call()
    ) async throws -> Answer {
        var call = call
        call.absentOn404 = false
        guard let answer: Answer = try await sendOrAbsent(method, path, body, call) else {
            throw IvyError(.commandFailed, endpoint: configuration.endpoint, detail: "no answer")
        }
        return answer
    }

    /// Sends one request, retrying what is worth it, and decodes the answer; nil for a 404 when
    /// the call allows it.
    private func sendOrAbsent<Body: Encodable, Answer: Decodable>(
        _ method: HTTPRequest.Method, _ path: String, _ body: Body?, _ call: Call
    ) async throws -> Answer? {
        let json = try body.map { Array(try JSONEncoder().encode($0)) }
        guard let answer = try await perform(method, path, json, call) else { return nil }
        do { return try JSONDecoder().decode(Answer.self, from: Data(answer)) } catch {
            throw unparsable(method, path)
        }
    }

    /// Reads a 2xx answer; an answer `read` finds no value in is an error.
    private func parse<Value>(
        _ answer: [UInt8]?, of method: HTTPRequest.Method, _ path: String,
        _ read: (JSONObjectReader) throws(JSONObjectReader.Failure) -> Value?
    ) throws(IvyError) -> Value {
        guard let answer, let value = try? read(JSONObjectReader(answer)) else {
            throw unparsable(method, path)
        }
        return value
    }

    private func unparsable(_ method: HTTPRequest.Method, _ path: String) -> IvyError {
        IvyError(
            .commandFailed, endpoint: configuration.endpoint,
            detail: "\(method.rawValue) \(Self.shown(path)): an answer that does not parse")
    }

    /// Sends one request, retrying what is worth it; returns the body of a 2xx answer, nil for a
    /// 404 when the call allows it. Retried: a 503 (IronMQ did nothing) and a connection that
    /// could not be made, always; another 5xx and a lost answer only for an idempotent call.
    private func perform(
        _ method: HTTPRequest.Method, _ path: String, _ body: [UInt8]?, _ call: Call
    ) async throws -> [UInt8]? {
        let request = HTTPRequest(
            method: method, url: "\(configuration.baseURL)/\(path)", headers: headers,
            authorization: Secret("OAuth \(configuration.token.exposedValue)"), body: body,
            timeout: configuration.requestTimeout + call.extraTime, isLongPoll: call.isLongPoll)
        var failures = 0
        while true {
            guard !isClosed.load(ordering: .relaxed) else {
                throw IvyError(.closed, endpoint: configuration.endpoint)
            }
            let failure: IvyError
            let retryable: Bool
            switch await exchange(request) {
            case .success(let response) where (200..<300).contains(response.status):
                return response.body
            case .success(let response):
                let message = redacted(Self.message(in: response.body))
                let summary = "\(method.rawValue) \(Self.shown(path)): HTTP \(response.status): \(message)"
                if response.status == 404 && message.localizedCaseInsensitiveContains("project") {
                    throw IvyError(
                        .connectionFailed, endpoint: configuration.endpoint,
                        detail: summary + " (the project id is wrong)")
                }
                if response.status == 404 && call.absentOn404 { return nil }
                if response.status == 404 && call.doneOn404AfterRetry && failures > 0 {
                    return Array("{}".utf8)
                }
                switch response.status {
                case 403 where call.reservationCall, 404 where call.reservationCall:
                    throw IvyError(.reservationLost, endpoint: configuration.endpoint, detail: summary)
                case 401:
                    throw IvyError(
                        .connectionFailed, endpoint: configuration.endpoint,
                        detail: summary + " (the token or project id is wrong)")
                case ..<500:
                    throw IvyError(.commandFailed, endpoint: configuration.endpoint, detail: summary)
                default:
                    failure = IvyError(.commandFailed, endpoint: configuration.endpoint, detail: summary)
                    retryable = response.status == 503 || call.idempotent
                }
            case .failure(let error):
                failure = IvyError(
                    .connectionFailed, endpoint: configuration.endpoint,
                    detail: "\(method.rawValue) \(Self.shown(path)): \(error)")
                // 6 and 7: the host was not found or refused the connection; nothing was sent.
                retryable = call.idempotent || error.code == 6 || error.code == 7
            }
            failures += 1
            guard retryable, failures < configuration.attempts, !Task.isCancelled else { throw failure }
            try? await Task.sleep(for: Self.backoff.delay(afterFailures: failures))
        }
    }

    /// `text` without the token, should a server or proxy have echoed it.
    private func redacted(_ text: String) -> String {
        text.replacingOccurrences(of: configuration.token.exposedValue, with: "***")
    }

    private func exchange(_ request: HTTPRequest) async -> Result<HTTPResponse, CurlConnection.CurlError> {
        await withCheckedContinuation { continuation in
            pool.perform(request) { continuation.resume(returning: $0) }
        }
    }

    /// 50 ms doubling to 2 s, ±50 %.
    static let backoff = Backoff(first: .milliseconds(50), longest: .seconds(2))

    /// The path without its query, for errors.
    private static func shown(_ path: String) -> String {
        String(path.prefix { $0 != "?" })
    }

    /// The server's `msg`, or the start of the body when it is not the usual JSON.
    private static func message(in body: [UInt8]) -> String {
        struct Message: Decodable { let msg: String }
        if let decoded = try? JSONDecoder().decode(Message.self, from: Data(body)) { return decoded.msg }
        return String(decoding: body.prefix(200), as: UTF8.self)
    }
}
