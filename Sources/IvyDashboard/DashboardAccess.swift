// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore
internal import IvyHTTP
internal import Synchronization

/// Who may use the dashboard, and which requests may change something.
///
/// - With a token, every request needs it: as the session cookie the login form sets (HttpOnly,
///   SameSite=Strict), or as `Authorization: Bearer TOKEN` (for a Prometheus scrape, say).
/// - Without one, the dashboard listens on loopback only, and a request must name a loopback
///   host in `Host`, so that a web page elsewhere cannot reach it through a DNS name that
///   points at 127.0.0.1 (DNS rebinding).
/// - Either way, a request that changes something (requeue, delete) must be a POST carrying the
///   page's CSRF token in `X-Ivy-CSRF`, from the dashboard's own origin when the browser names one.
final class DashboardAccess: Sendable {
    static let sessionCookie = "ivy_session"
    static let csrfHeader = "x-ivy-csrf"
    /// Sessions kept at most; the oldest is forgotten past this (its browser logs in again).
    static let sessionLimit = 1024
    static let sessionLifetime: Duration = .seconds(12 * 3600)

    private let token: [UInt8]?
    /// Embedded in each page; required on requests that change something.
    let csrfToken: String
    private let sessions = Mutex<[String: ContinuousClock.Instant]>([:])

    init(token: Secret?) {
        self.token = token.map { Array($0.exposedValue.utf8) }
        csrfToken = Self.randomToken()
    }

    var needsLogin: Bool { token != nil }

    /// Whether `request` may see the dashboard.
    func admits(_ request: HTTPRequest) -> Bool {
        guard let token else { return Self.namesLoopbackHost(request) }
        if let authorization = request.header("authorization"),
            authorization.lowercased().hasPrefix("bearer ")
        {
            return OpenSSL.constantTimeEqual(Array(authorization.utf8.dropFirst(7))[...], token)
        }
        guard let session = request.cookies[Self.sessionCookie] else { return false }
        let now = ContinuousClock.now
        return sessions.withLock { sessions in
            guard let expiry = sessions[session] else { return false }
            if expiry < now { sessions[session] = nil }
            return expiry >= now
        }
    }

    /// Whether `request` may change something: a POST with the CSRF token, from this origin.
    func allowsChange(_ request: HTTPRequest) -> Bool {
        guard request.method == "POST", let sent = request.header(Self.csrfHeader),
            OpenSSL.constantTimeEqual(Array(sent.utf8)[...], Array(csrfToken.utf8))
        else { return false }
        return Self.isSameOrigin(request)
    }

    /// Checks a login form's token; on a match, a new session and its `Set-Cookie` value.
    func logIn(with offered: String) -> String? {
        guard let token, OpenSSL.constantTimeEqual(Array(offered.utf8)[...], token) else { return nil }
        let session = Self.randomToken()
        let now = ContinuousClock.now
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value >= now }
            if sessions.count >= Self.sessionLimit, let oldest = sessions.min(by: { $0.value < $1.value }) {
                sessions[oldest.key] = nil
            }
            sessions[session] = now + Self.sessionLifetime
        }
        return
            "\(Self.sessionCookie)=\(session); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Self.sessionLifetime.components.seconds)"
    }

    /// Ends `request`'s session; the `Set-Cookie` value that clears the cookie.
    func logOut(_ request: HTTPRequest) -> String {
        if let session = request.cookies[Self.sessionCookie] { sessions.withLock { $0[session] = nil } }
        return "\(Self.sessionCookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    }

    /// Whether the browser's `Origin`, when it sends one, is the host the request was sent to.
    private static func isSameOrigin(_ request: HTTPRequest) -> Bool {
        guard let origin = request.header("origin") else { return true }
        guard let host = request.header("host") else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    /// Whether `Host` names this machine: `localhost`, 127.x.x.x or [::1], with any port.
    static func namesLoopbackHost(_ request: HTTPRequest) -> Bool {
        guard let host = request.header("host") else { return false }
        let name: Substring
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            name = host[host.index(after: host.startIndex)..<close]
        } else {
            name = host.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[0]
        }
        return name.lowercased() == "localhost" || ListenAddress.isLoopback(host: String(name))
    }

    private static func randomToken() -> String {
        let digits = Array("0123456789abcdef")
        return String(OpenSSL.randomBytes(24).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}
