// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyDashboard
import IvyHTTP
import IvyTestSupport
import Testing

/// The dashboard over HTTP on the memory backend: who it answers, what it answers, and the
/// changes it makes. scripts/dashboard-test.sh drives the built binary on Redis with a real
/// browser.
@Suite("Dashboard")
struct DashboardTests {
    static let token = "a-token-of-some-thirty-characters"
    let queue = QueueName("dq")

    /// Serves a dashboard over `backend` for `body`, then closes it.
    func serving(
        _ backend: MemoryQueueBackend = MemoryQueueBackend(), notifier: MemoryNotifier? = MemoryNotifier(),
        token: String? = nil, encryption: MessageEncryption? = nil,
        _ body: (Dashboard, Client) async throws -> Void
    ) async throws {
        let dashboard = try Dashboard(
            backends: [backend], notifier: notifier,
            options: Dashboard.Options(
                listen: try ListenAddress("127.0.0.1:0"), token: token.map { Secret($0) }, queues: [queue],
                encryption: encryption, sampleInterval: .milliseconds(50)))
        do { try await body(dashboard, Client(port: dashboard.address.port)) } catch {
            await dashboard.close()
            throw error
        }
        await dashboard.close()
    }

    /// Requests as a browser or a script sends them.
    struct Client {
        var port: Int

        func send(
            _ method: String, _ path: String, headers: [String: String] = [:], body: String = ""
        ) async throws -> RawHTTP.Reply {
            var all = ["Host": "127.0.0.1:\(port)", "Connection": "close"]
            all.merge(headers) { $1 }
            if !body.isEmpty || method == "POST" { all["Content-Length"] = "\(body.utf8.count)" }
            let head = all.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
            return try await RawHTTP.exchange(port: port, "\(method) \(path) HTTP/1.1\r\n\(head)\r\n\(body)")
        }

        /// The backend's report, once the first sample is in.
        func report(headers: [String: String] = [:]) async throws -> [String: Any] {
            let body = try await withDeadline(.seconds(30), "the dashboard's first sample") {
                while true {
                    let reply = try await send("GET", "/api/backends/0", headers: headers)
                    if reply.status == 200 { return reply.body }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            return try Self.object(body)
        }

        /// The CSRF token the page carries.
        func csrfToken(headers: [String: String] = [:]) async throws -> String {
            let page = try await send("GET", "/backends/0", headers: headers)
            let marker = #"<meta name="ivy-csrf" content=""#
            let start = try #require(page.body.range(of: marker)).upperBound
            return String(page.body[start...].prefix { $0 != "\"" })
        }

        static func object(_ text: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        }
    }

    @Test func withoutATokenItAnswersLoopbackHostNamesOnly() async throws {
        try await serving { _, client in
            _ = try await client.report()
            let rebound = try await client.send(
                "GET", "/api/backends/0", headers: ["Host": "evil.example:8080"])
            #expect(rebound.status == 403, "a DNS name pointing at loopback is not this dashboard")
            for host in ["localhost:1", "127.0.0.1", "[::1]:8080"] {
                let reply = try await client.send("GET", "/api/backends/0", headers: ["Host": host])
                #expect(reply.status == 200, "\(host)")
            }
            let page = try await client.send("GET", "/backends/0")
            #expect(page.headers["content-security-policy"]?.contains("script-src 'self'") == true)
            #expect(page.headers["x-frame-options"] == "DENY")
        }
        #expect(throws: IvyError.self) {
            _ = try Dashboard(
                backends: [MemoryQueueBackend()], notifier: nil,
                options: .init(listen: try ListenAddress("0.0.0.0:0")))
        }
        #expect(throws: IvyError.self) {
            _ = try Dashboard(
                backends: [MemoryQueueBackend()], notifier: nil,
                options: .init(listen: try ListenAddress("127.0.0.1:0"), token: "short"))
        }
    }

    @Test func withATokenEveryRequestNeedsIt() async throws {
        try await serving(token: Self.token) { _, client in
            #expect(try await client.send("GET", "/api/backends/0").status == 401)
            #expect(try await client.send("GET", "/metrics").status == 401)
            let page = try await client.send("GET", "/backends/0")
            #expect(page.status == 303 && page.headers["location"] == "/login")
            #expect(
                try await client.send("GET", "/assets/dashboard.js").status == 200, "the login page's style")
            let form = ["Content-Type": "application/x-www-form-urlencoded"]
            let wrong = try await client.send("POST", "/login", headers: form, body: "token=nope")
            #expect(wrong.status == 401)
            #expect(wrong.headers["set-cookie"] == nil)
            // Percent-encoded as a browser sends it.
            let encoded = Self.token.replacingOccurrences(of: "-", with: "%2D")
            let login = try await client.send("POST", "/login", headers: form, body: "token=\(encoded)")
            #expect(login.status == 303)
            let cookie = try #require(login.headers["set-cookie"])
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            let session = ["Cookie": String(cookie.prefix { $0 != ";" })]
            _ = try await client.report(headers: session)
            let forged = ["Cookie": "ivy_session=\(String(repeating: "0", count: 48))"]
            #expect(try await client.send("GET", "/api/backends/0", headers: forged).status == 401)
            let bearer = ["Authorization": "bearer \(Self.token)"]
            #expect(try await client.send("GET", "/metrics", headers: bearer).status == 200)
            #expect(
                try await client.send("GET", "/metrics", headers: ["Authorization": "Bearer \(Self.token)x"])
                    .status
                    == 401)

            let csrf = try await client.csrfToken(headers: session)
            #expect(try await client.send("POST", "/logout", headers: session).status == 403, "no CSRF token")
            let logout = try await client.send(
                "POST", "/logout", headers: session.merging(["X-Ivy-CSRF": csrf]) { $1 })
            #expect(logout.status == 303 && logout.headers["set-cookie"]?.contains("Max-Age=0") == true)
            #expect(try await client.send("GET", "/api/backends/0", headers: session).status == 401)
        }
    }

    @Test func deadLettersAreListedRequeuedAndDeletedWithTheCSRFToken() async throws {
        let backend = MemoryQueueBackend()
        let encryption = MessageEncryption(key: "dashboard-test-key")
        let plain = try await backend.send(Array(#"{"name":"t","args":[1]}"#.utf8), to: queue)
        let sealed = try await backend.send(
            encryption.token(for: Array(#"{"name":"t","args":[2]}"#.utf8)), to: queue)
        let reserved = try await backend.reserve(from: queue, count: 2, visibility: .seconds(30), wait: .zero)
        for reservation in reserved { try await backend.deadLetter(reservation, reason: "Boom: <b>no</b>") }
        try await serving(backend, encryption: encryption) { _, client in
            let listing = try await client.send("GET", "/api/backends/0/dead?queue=dq")
            let letters = try #require(
                try JSONSerialization.jsonObject(with: Data(listing.body.utf8)) as? [[String: Any]])
            #expect(letters.count == 2)
            let byID = Dictionary(uniqueKeysWithValues: letters.map { ($0["id"] as? String ?? "", $0) })
            #expect(byID[sealed]?["body"] as? String == #"{"name":"t","args":[2]}"#, "opened with the key")
            #expect(byID[sealed]?["sealed"] as? Bool == true)
            #expect(
                byID[plain]?["reason"] as? String == "Boom: <b>no</b>", "as data: the page sets it as text")

            let csrf = try await client.csrfToken()
            let json = ["Content-Type": "application/json"]
            let change = json.merging(["X-Ivy-CSRF": csrf]) { $1 }
            let requeue = #"{"queue":"dq","id":"\#(plain)"}"#
            #expect(
                try await client.send("POST", "/api/backends/0/dead/requeue", headers: json, body: requeue)
                    .status == 403)
            #expect(
                try await client.send(
                    "POST", "/api/backends/0/dead/requeue",
                    headers: change.merging(["Origin": "http://evil.example"]) { $1 }, body: requeue
                ).status == 403, "another origin")
            #expect(
                try await client.send("POST", "/api/backends/0/dead/requeue", headers: change, body: requeue)
                    .status == 200)
            #expect(
                try await client.send("POST", "/api/backends/0/dead/requeue", headers: change, body: requeue)
                    .status == 404,
                "requeued already")
            let delete = #"{"queue":"dq","id":"\#(sealed)"}"#
            #expect(
                try await client.send("POST", "/api/backends/0/dead/delete", headers: change, body: delete)
                    .status == 200)
            let size = await backend.size(of: queue)
            #expect(size == QueueSize(ready: 1, delayed: 0, reserved: 0, dead: 0))
            #expect(
                try await client.send("POST", "/api/backends/0/dead/delete", headers: change, body: "{")
                    .status == 400)
            #expect(
                try await client.send("POST", "/api/backends/0/dead/move", headers: change, body: delete)
                    .status == 404)
            #expect(try await client.send("GET", "/api/backends/0/dead/requeue").status == 405)
            #expect(try await client.send("GET", "/api/backends/7").status == 404)
            #expect(try await client.send("DELETE", "/backends/0").status == 405)
            #expect(try await client.send("GET", "/nowhere").status == 404)
        }
    }

    /// Workers come from their announcements; throughput from what their tallies add between
    /// samples; a queue they serve is shown without being named.
    @Test func workersAndThroughputComeFromAnnouncements() async throws {
        let notifier = MemoryNotifier()
        let firstAnnouncement = Date(timeIntervalSince1970: 1_800_000_000)
        func announce(succeeded: Int, at time: Date) {
            notifier.announce(
                WorkerPresence(
                    id: "w#1", name: "w", host: "h", pid: 42, queues: ["served"], backend: "memory://",
                    concurrency: 8,
                    running: 3, startedAt: time.addingTimeInterval(-3600), announcedAt: time,
                    version: "x",
                    tallies: [
                        .init(
                            task: "t", queue: "served", started: succeeded, succeeded: succeeded, retried: 0,
                            failed: 0,
                            deadLettered: 0)
                    ],
                    recentFailures: [
                        .init(
                            kind: "failed", at: Date(), task: "t", taskID: "c1", queue: "served", attempt: 2,
                            error: "E")
                    ]), for: .seconds(60))
        }
        announce(succeeded: 100, at: firstAnnouncement)
        try await serving(notifier: notifier) { _, client in
            let first = try await client.report()
            let workers = try #require(first["workers"] as? [[String: Any]])
            #expect(
                workers.count == 1 && workers.first?["pid"] as? Int == 42
                    && workers.first?["running"] as? Int == 3)
            let failures = try #require(first["failures"] as? [[String: Any]])
            #expect(
                failures.first?["taskID"] as? String == "c1" && failures.first?["worker"] as? String == "w")
            // What the worker did before it was first seen is not throughput; 50 calls in the
            // half second to its next announcement are 100 a second.
            announce(succeeded: 150, at: firstAnnouncement.addingTimeInterval(0.5))
            let rates = try await withDeadline(.seconds(30), "throughput from the second announcement") {
                while true {
                    let report = try await client.report()
                    let queues = report["queues"] as? [[String: Any]] ?? []
                    let served = queues.first { $0["name"] as? String == "served" }
                    let rates = served?["throughput"] as? [Double] ?? []
                    if rates.contains(where: { $0 > 0 }) { return rates }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            // Zero until the second announcement, then its rate until a third (a slow client may
            // see several samples of it).
            let since = rates.drop { $0 == 0 }
            #expect(rates.contains(0) && !since.isEmpty && since.allSatisfy { $0 == 100 }, "\(rates)")
            let named = try await client.report()["queues"] as? [[String: Any]] ?? []
            #expect(named.map { $0["name"] as? String } == ["dq", "served"], "named first, then announced")
            let metrics = try await client.send("GET", "/metrics")
            #expect(
                metrics.body.contains(
                    #"ivy_worker_tasks_total{worker="w#1",task="t",queue="served",outcome="succeeded"} 150"#))
            #expect(
                metrics.body.contains(#"ivy_queue_messages{backend="memory://",queue="dq",state="ready"} 0"#))
            #expect(
                metrics.body.contains(
                    #"ivy_worker_tasks_started_total{worker="w#1",task="t",queue="served"} 150"#))
            #expect(
                !metrics.body.contains("ivy_worker_periodic_calls_sent_total{"), "no periodic task, no series"
            )
        }
    }
}
