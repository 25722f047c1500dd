// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore
public import IvyHTTP
internal import Synchronization

/// A web dashboard of queues and workers, served from the process (what `ivy dashboard` runs):
/// one page per queue backend, live (its page polls a JSON API every second), with each queue's
/// counts by state and throughput, the workers alive (`WorkerPresence`), their latest
/// failures, the dead letters of a queue (requeue or delete each), a lookup of a call by id, and
/// `/metrics` for Prometheus. Plain HTML, CSS and JavaScript served from the binary: nothing is
/// fetched from elsewhere, so it works offline.
///
/// ```swift
/// guard let backend = connection.backend as? any InspectableQueueBackend else { return }
/// let dashboard = try Dashboard(
///     backends: [backend], notifier: connection.notifier,
///     options: .init(listen: try ListenAddress("127.0.0.1:8080")))
/// // … until done:
/// await dashboard.close()
/// ```
///
/// Access: with ``Options/token``, every request needs it (a login form sets a session cookie,
/// or `Authorization: Bearer`); without one, it listens on loopback only. Keys and passwords
/// never reach the page: backends show their URLs with credentials redacted, and sealed bodies
/// are opened only with ``Options/encryption``.
public final class Dashboard: Sendable {
    /// How the dashboard is served.
    public struct Options: Sendable {
        /// Where it listens; loopback unless a ``token`` is given.
        public var listen: ListenAddress
        /// Required of every request when set (at least 16 characters).
        public var token: Secret?
        /// Queues shown besides those live workers serve.
        public var queues: [QueueName]
        /// Opens sealed dead-letter bodies; without it they show as `<sealed>`.
        public var encryption: MessageEncryption?
        /// How often brokers and the notifier are asked, however many pages watch.
        public var sampleInterval: Duration
        /// The HTTP server's limits.
        public var server: HTTPServer.Options
        /// Where the dashboard reports brokers that fail it and the changes made through it.
        public var logger: any IvyLogger

        public init(
            listen: ListenAddress, token: Secret? = nil, queues: [QueueName] = [],
            encryption: MessageEncryption? = nil, sampleInterval: Duration = .seconds(1),
            server: HTTPServer.Options = .init(), logger: any IvyLogger = StderrLogger()
        ) {
            self.logger = logger
            self.listen = listen
            self.token = token
            self.queues = queues
            self.encryption = encryption
            self.sampleInterval = sampleInterval
            self.server = server
        }
    }

    /// One queue backend and its place in the page's list.
    struct Backend: Sendable {
        var index: Int
        var inspector: any InspectableQueueBackend

        var report: DashboardReport.Backend {
            DashboardReport.Backend(
                index: index, endpoint: inspector.endpoint, distinguishesStates: inspector.distinguishesStates
            )
        }
    }

    /// Where it listens (with the port chosen, for port 0); after ``close()``, where it
    /// listened.
    public var address: ListenAddress { listening.withLock { $0 } }

    private let backends: [Backend]
    private let notifier: (any Notifier)?
    private let options: Options
    private let access: DashboardAccess
    private let sampler: DashboardSampler
    private let sampling: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let server = Mutex<HTTPServer?>(nil)
    private let listening: Mutex<ListenAddress>

    /// Starts serving.
    ///
    /// - Parameters:
    ///   - backends: The queue backends shown, a page each.
    ///   - notifier: Where workers announce themselves and statuses are kept; nil for neither.
    ///   - options: Where it listens, its token, and what else it shows.
    /// - Throws: `IvyError.Code.invalidConfiguration` for no backend, a token under 16
    ///   characters, no token on an address beyond loopback, or an interval out of range; an
    ///   error of the HTTP server when it cannot listen there.
    public init(
        backends: [any InspectableQueueBackend], notifier: (any Notifier)?, options: Options
    ) throws(IvyError) {
        guard !backends.isEmpty else {
            throw IvyError.invalidConfiguration("Dashboard backends", mustBe: "at least one", got: 0)
        }
        if let token = options.token, token.exposedValue.count < 16 {
            throw IvyError.invalidConfiguration(
                "the dashboard's token", mustBe: "at least 16 characters", got: "\(token.exposedValue.count)")
        }
        guard options.token != nil || options.listen.isLoopback else {
            throw IvyError(
                .invalidConfiguration,
                detail:
                    "without a token the dashboard listens on loopback only (\(options.listen) is not): give one (--token-file) or listen on 127.0.0.1"
            )
        }
        try IvyError.check(
            "Dashboard sampleInterval", options.sampleInterval, in: .milliseconds(50)...(.seconds(3_600)))
        self.backends = backends.enumerated().map { Backend(index: $0.offset, inspector: $0.element) }
        self.notifier = notifier
        self.options = options
        access = DashboardAccess(token: options.token)
        listening = Mutex(options.listen)
        sampler = DashboardSampler(
            backends: self.backends, presence: notifier as? any WorkerPresenceStore,
            namedQueues: options.queues,
            interval: options.sampleInterval, logger: options.logger)
        let started = try HTTPServer(listeningOn: options.listen, options: options.server) {
            [weak self] request in
            guard let self else { return .error(503, "the dashboard is closing") }
            return await self.respond(to: request)
        }
        listening.withLock { $0 = started.address }
        server.withLock { $0 = started }
        let context = (statuses: notifier?.activeStatusStore != nil, needsLogin: access.needsLogin)
        let task = Task { [sampler] in await sampler.run(context: { context }) }
        sampling.withLock { $0 = task }
    }

    deinit {
        sampling.withLock { $0?.cancel() }
    }

    /// Stops serving and sampling; requests in progress finish first.
    public func close() async {
        let task = sampling.withLock { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
        let closing = server.withLock { server in
            defer { server = nil }
            return server
        }
        await closing?.close()
    }

    // MARK: Routing

    /// Answers `request`, with the headers every answer carries.
    func respond(to request: HTTPRequest) async -> HTTPResponse {
        var response = await route(request)
        response.headers += [
            ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store"),
            ("X-Frame-Options", "DENY"),
        ]
        return response
    }

    private func route(_ request: HTTPRequest) async -> HTTPResponse {
        let path = request.path
        if path == "/login" { return logIn(request) }
        if path == "/assets/dashboard.css" || path == "/assets/dashboard.js" {
            guard Self.isRead(request) else { return Self.methodNotAllowed("GET, HEAD") }
            return path.hasSuffix(".css")
                ? HTTPResponse(contentType: "text/css; charset=utf-8", DashboardAssets.css)
                : HTTPResponse(contentType: "text/javascript; charset=utf-8", DashboardAssets.script)
        }
        guard access.admits(request) else { return refuse(request) }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        let reads = Self.isRead(request)
        switch parts.count {
        case 1 where parts[0] == "":
            return reads ? Self.redirect(to: "/backends/0") : Self.methodNotAllowed("GET, HEAD")
        case 1 where parts[0] == "metrics":
            guard reads else { return Self.methodNotAllowed("GET, HEAD") }
            return HTTPResponse(
                contentType: PrometheusText.contentType, DashboardMetrics.text(sampler: sampler))
        case 1 where parts[0] == "logout":
            guard request.method == "POST" else { return Self.methodNotAllowed("POST") }
            guard access.allowsChange(request) else {
                return Self.json(403, ["error": "missing or wrong CSRF token"])
            }
            return HTTPResponse(
                status: 303, headers: [("Location", "/login"), ("Set-Cookie", access.logOut(request))])
        case 2 where parts[0] == "backends":
            guard reads else { return Self.methodNotAllowed("GET, HEAD") }
            guard let backend = backend(parts[1]) else { return .error(404, "no such backend") }
            return HTTPResponse(
                status: 200,
                headers: [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Security-Policy", DashboardAssets.contentSecurityPolicy),
                ],
                body: Array(DashboardAssets.page(backend: backend.index, csrfToken: access.csrfToken).utf8))
        case 2 where parts[0] == "api" && parts[1] == "tasks":
            // The id in the query: ids may hold `/` or anything else a path would split.
            guard request.method == "GET" else { return Self.methodNotAllowed("GET") }
            guard let id = request.query["id"], !id.isEmpty else {
                return Self.json(400, ["error": "give ?id=CALL_ID"])
            }
            return await status(of: id)
        case 3...5 where parts[0] == "api" && parts[1] == "backends":
            guard let backend = backend(parts[2]) else { return Self.json(404, ["error": "no such backend"]) }
            if parts.count == 3 {
                guard request.method == "GET" else { return Self.methodNotAllowed("GET") }
                guard let report = sampler.report(of: backend.index) else {
                    return Self.json(503, ["error": "the first sample is not taken yet"])
                }
                return Self.json(200, report)
            }
            guard parts[3] == "dead" else { break }
            if parts.count == 4 {
                guard request.method == "GET" else { return Self.methodNotAllowed("GET") }
                return await deadLetters(request, on: backend)
            }
            guard request.method == "POST" else { return Self.methodNotAllowed("POST") }
            return await change(request, action: parts[4], on: backend)
        default: break
        }
        return path.hasPrefix("/api/") ? Self.json(404, ["error": "not found"]) : .error(404, "not found")
    }

    private func backend(_ index: String) -> Backend? {
        guard let index = Int(index), backends.indices.contains(index) else { return nil }
        return backends[index]
    }

    /// Without a token: a request whose `Host` is not loopback (DNS rebinding). With one: the
    /// login form for a page, 401 for the rest.
    private func refuse(_ request: HTTPRequest) -> HTTPResponse {
        guard access.needsLogin else {
            return .error(403, "this dashboard answers to localhost, 127.0.0.1 or [::1] only")
        }
        if request.method == "GET", !request.path.hasPrefix("/api/"), request.path != "/metrics" {
            return Self.redirect(to: "/login")
        }
        var response = Self.json(401, ["error": "log in first, or send Authorization: Bearer TOKEN"])
        response.headers.append(("WWW-Authenticate", #"Bearer realm="ivy""#))
        return response
    }

    private func logIn(_ request: HTTPRequest) -> HTTPResponse {
        let page = { (status: Int, message: String?) in
            HTTPResponse(
                status: status,
                headers: [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Security-Policy", DashboardAssets.contentSecurityPolicy),
                ],
                body: Array(DashboardAssets.loginPage(message: message).utf8))
        }
        switch request.method {
        case "GET", "HEAD":
            guard access.needsLogin else { return Self.redirect(to: "/") }
            return page(200, nil)
        case "POST":
            guard access.needsLogin else { return Self.redirect(to: "/") }
            let offered = FormFields(request.body)["token"] ?? ""
            guard let cookie = access.logIn(with: offered) else { return page(401, "That is not the token.") }
            return HTTPResponse(status: 303, headers: [("Location", "/"), ("Set-Cookie", cookie)])
        default: return Self.methodNotAllowed("GET, HEAD, POST")
        }
    }

    // MARK: Dead letters and statuses

    /// The dead letters of `?queue=` the broker lists at once (``deadLettersListed`` at most).
    private func deadLetters(_ request: HTTPRequest, on backend: Backend) async -> HTTPResponse {
        guard let name = request.query["queue"], let queue = try? QueueName(name) else {
            return Self.json(400, ["error": "give ?queue=NAME"])
        }
        do {
            let letters = try await backend.inspector.deadLetters(of: queue, count: Self.deadLettersListed)
            return Self.json(200, letters.map { DeadLetterReport($0, encryption: options.encryption) })
        } catch {
            options.logger.warning("dashboard: cannot list dead letters: \(error)", ["queue": queue.rawValue])
            return Self.json(502, ["error": "the broker: \(error)"])
        }
    }

    /// Requeues or deletes the dead letter the JSON body names (`{"queue": …, "id": …}`).
    private func change(_ request: HTTPRequest, action: String, on backend: Backend) async -> HTTPResponse {
        guard access.allowsChange(request) else {
            return Self.json(403, ["error": "missing or wrong CSRF token"])
        }
        guard action == "requeue" || action == "delete" else { return Self.json(404, ["error": "not found"]) }
        guard let fields = try? JSONDecoder().decode([String: String].self, from: Data(request.body)),
            let name = fields["queue"], let queue = try? QueueName(name), let id = fields["id"],
            !id.isEmpty
        else { return Self.json(400, ["error": #"send {"queue": NAME, "id": MESSAGE_ID}"#]) }
        do {
            let done =
                action == "requeue"
                ? try await backend.inspector.requeueDeadLetter(of: queue, messageID: id)
                : try await backend.inspector.deleteDeadLetter(of: queue, messageID: id)
            options.logger.info(
                done ? "dashboard: \(action)d a dead letter" : "dashboard: no dead letter to \(action)",
                ["queue": queue.rawValue, "message.id": id])
            return done
                ? Self.json(200, ["done": true]) : Self.json(404, ["error": "no dead letter has that id now"])
        } catch {
            options.logger.warning(
                "dashboard: cannot \(action) a dead letter: \(error)", ["queue": queue.rawValue])
            return Self.json(502, ["error": "the broker: \(error)"])
        }
    }

    private func status(of id: String) async -> HTTPResponse {
        guard let store = notifier?.activeStatusStore else {
            return Self.json(404, ["error": "this notifier keeps no statuses"])
        }
        do { return Self.json(200, StatusReport(try await store.status(of: id))) } catch {
            return Self.json(502, ["error": "the notifier: \(error)"])
        }
    }

    // MARK: Answers

    private static func isRead(_ request: HTTPRequest) -> Bool {
        request.method == "GET" || request.method == "HEAD"
    }

    private static func json(_ status: Int, _ value: some Encodable) -> HTTPResponse {
        guard let body = try? JSONEncoder.dashboard.encode(value) else {
            return HTTPResponse(
                status: 500, headers: [("Content-Type", "application/json")],
                body: Array(#"{"error":"the answer could not be written as JSON"}"#.utf8))
        }
        return HTTPResponse(
            status: status, headers: [("Content-Type", "application/json")], body: Array(body))
    }

    /// Dead letters a listing shows at most: bodies can be large.
    static let deadLettersListed = 20

    private static func redirect(to location: String) -> HTTPResponse {
        HTTPResponse(status: 303, headers: [("Location", location)])
    }

    private static func methodNotAllowed(_ allowed: String) -> HTTPResponse {
        HTTPResponse(
            status: 405, headers: [("Allow", allowed), ("Content-Type", "text/plain")],
            body: Array("method not allowed\n".utf8))
    }
}
