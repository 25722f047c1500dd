// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// What the server sends back.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Headers in order; the server adds `Content-Length`.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response of `text` with its media type.
    public init(status: Int = 200, contentType: String, _ text: String) {
        self.init(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    /// A plain-text error page.
    public static func error(_ status: Int, _ message: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", message + "\n")
    }
}
