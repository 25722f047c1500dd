// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

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
    /// Header lines, `Name: value`. They may hold the token: never logged.
    var headers: [String]
    /// The JSON body; nil for none.
    var body: [UInt8]?
    /// How long the whole exchange may take (connect, send, a long poll's wait, receive).
    var timeout: Duration
}

struct HTTPResponse: Sendable {
    var status: Int
    var body: [UInt8]
}
