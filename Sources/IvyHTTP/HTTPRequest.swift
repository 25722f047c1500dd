// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// An HTTP request as the server read it.
public struct HTTPRequest: Sendable {
    /// `GET`, `POST`, …, as sent.
    public var method: String
    /// The path, percent-decoded, without the query.
    public var path: String
    /// The query's arguments, decoded; the last of a repeated name.
    public var query: [String: String]
    /// The headers, by lowercased name; the last of a repeated name.
    public var headers: [String: String]
    /// The cookies the request sent, by name.
    public var cookies: [String: String]
    /// The body as sent (at most ``HTTPServer/Options/maximumBodySize`` bytes).
    public var body: [UInt8]

    public init(
        method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:],
        cookies: [String: String] = [:], body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.cookies = cookies
        self.body = body
    }

    /// The value of header `name` (any case).
    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}
