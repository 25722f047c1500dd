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

    /// Ends the connections; requests from now on fail at once with ``IvyError/Code/closed``.
    func close() {
        isClosed.store(true, ordering: .relaxed)
        pool.close()
    }

    // MARK: Messages

    struct PostedMessage: Encodable, Sendable {
        let body: String
        let delay: Int?
    }

    /// Posts messages (at most 100); returns their ids in order.
    func post(_ messages: [PostedMessage], to queue: String) async throws -> [String] {
        struct Request: Encodable { let messages: [PostedMessage] }
        struct Response: Decodable { let ids: [String] }
        let response: Response = try await send(
            .post, "queues/\(queue)/messages", Request(messages: messages), Call(idempotent: false))
        guard response.ids.count == messages.count else {
            throw IvyError(
                .commandFailed, endpoint: configuration.endpoint,
                detail: "posted \(messages.count) messages, got \(response.ids.count) ids")
        }
        return response.ids
    }

    /// A message id: a string, or a number as the docs' examples show it.
    struct MessageID: Decodable, Sendable {
        let text: String

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(UInt64.self) {
                text = String(number)
            } else {
                text = try container.decode(String.self)
            }
        }
    }

    struct ReservedMessage: Decodable, Sendable {
        let messageID: MessageID
        var id: String { messageID.text }
        let body: String
        let reservedCount: Int
        let reservationID: String

        enum CodingKeys: String, CodingKey {
            case messageID = "id"
            case body
            case reservedCount = "reserved_count"
            case reservationID = "reservation_id"
        }
    }

    /// Reserves up to `count` (≤ 100) messages for `timeout` seconds, long-polling up to `wait`;
    /// nil for a queue that does not exist, when `absentOn404`.
    func reserve(from queue: String, count: Int, timeout: Int, wait: Int, absentOn404: Bool) async throws
        -> [ReservedMessage]?
    {
        struct Request: Encodable {
            let n: Int
            let timeout: Int
            let wait: Int
        }
        struct Response: Decodable { let messages: [ReservedMessage] }
        let response: Response? = try await sendOrAbsent(
            .post, "queues/\(queue)/reservations", Request(n: count, timeout: timeout, wait: wait),
            Call(absentOn404: absentOn404, isLongPoll: wait > 0, extraTime: .seconds(wait)))
        return response?.messages
    }

    /// Deletes a reserved message. A stale reservation is ``IvyError/Code/reservationLost``.
    func delete(_ id: String, reservation: String, from queue: String) async throws {
        let _: Acknowledged = try await send(
            .delete, "queues/\(queue)/messages/\(id)", ["reservation_id": reservation],
            Call(reservationCall: true, doneOn404AfterRetry: true))
    }

    /// Deletes reserved messages in one request. IronMQ deletes all or none: one stale
    /// reservation fails the request (``IvyError/Code/reservationLost``) and deletes nothing.
    func delete(_ reservations: [(id: String, reservation: String)], from queue: String) async throws {
        struct Item: Encodable {
            let id: String
            let reservationID: String
            enum CodingKeys: String, CodingKey {
                case id
                case reservationID = "reservation_id"
            }
        }
        struct Request: Encodable { let ids: [Item] }
        let _: Acknowledged = try await send(
            .delete, "queues/\(queue)/messages",
            Request(ids: reservations.map { Item(id: $0.id, reservationID: $0.reservation) }),
            Call(reservationCall: true))
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

    struct PeekedMessage: Decodable, Sendable {
        let messageID: MessageID
        var id: String { messageID.text }
        let body: String
        let reservedCount: Int?

        enum CodingKeys: String, CodingKey {
            case messageID = "id"
            case body
            case reservedCount = "reserved_count"
        }
    }

    /// The next `count` (≤ 100) messages without reserving them; none for a missing queue.
    func peek(_ queue: String, count: Int) async throws -> [PeekedMessage] {
        struct Response: Decodable { let messages: [PeekedMessage] }
        let response: Response? = try await sendOrAbsent(
            .get, "queues/\(queue)/messages?n=\(count)", Empty?.none, Call(absentOn404: true))
        return response?.messages ?? []
    }

    struct QueueInfo: Decodable, Sendable {
        /// Every message not deleted.
        let size: Int?
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
    /// the call allows it. Retried: a 503 (IronMQ did nothing) and a connection that could not
    /// be made, always; another 5xx and a lost answer only for an idempotent call.
    private func sendOrAbsent<Body: Encodable, Answer: Decodable>(
        _ method: HTTPRequest.Method, _ path: String, _ body: Body?, _ call: Call
    ) async throws -> Answer? {
        let request = HTTPRequest(
            method: method, url: "\(configuration.baseURL)/\(path)", headers: headers,
            authorization: Secret("OAuth \(configuration.token.exposedValue)"),
            body: try body.map { Array(try JSONEncoder().encode($0)) },
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
                do { return try JSONDecoder().decode(Answer.self, from: Data(response.body)) } catch {
                    throw IvyError(
                        .commandFailed, endpoint: configuration.endpoint,
                        detail: "\(method.rawValue) \(Self.shown(path)): an answer that does not parse")
                }
            case .success(let response):
                let message = redacted(Self.message(in: response.body))
                let summary = "\(method.rawValue) \(Self.shown(path)): HTTP \(response.status): \(message)"
                if response.status == 404 && message.localizedCaseInsensitiveContains("project") {
                    throw IvyError(
                        .connectionFailed, endpoint: configuration.endpoint,
                        detail: summary + " (the project id is wrong)")
                }
                if response.status == 404 && call.absentOn404 { return nil }
                if response.status == 404 && call.doneOn404AfterRetry && failures > 0,
                    let done = try? JSONDecoder().decode(Answer.self, from: Data("{}".utf8))
                {
                    return done
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
