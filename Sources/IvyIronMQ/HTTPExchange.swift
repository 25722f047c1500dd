// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

/// One HTTP request as the IronMQ client sends it, and what came back.
struct HTTPRequest: Sendable {
    enum Method: String, Sendable {
        case get = "GET"
        case post = "POST"
        case put = "PUT"
        case patch = "PATCH"
        case delete = "DELETE"
    }

    var method: Method
    /// The whole URL, query included.
    var url: String
    /// Header lines, `Name: value`; the token's line is added when the request is performed,
    /// from ``authorization``.
    var headers: [String]
    /// `OAuth <token>`, kept as a secret so that describing a request never shows it.
    var authorization: Secret
    /// The JSON body; nil for none.
    var body: [UInt8]?
    /// How long the whole exchange may take (connect, send, a long poll's wait, receive).
    var timeout: Duration
    /// A long poll: the pool keeps it off connections that acknowledgements are waiting for.
    var isLongPoll = false
    /// The most response bytes accepted; a larger answer is abandoned.
    var maximumResponse = 32 << 20
}

struct HTTPResponse: Sendable {
    var status: Int
    var body: [UInt8]
}
