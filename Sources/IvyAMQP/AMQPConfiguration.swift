// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore

/// Where an AMQP 0-9-1 broker (RabbitMQ) is and how to use it.
///
/// From a URL, as RabbitMQ's URI spec has it: `amqp://user:password@host[:port]/vhost` (port
/// 5672) or `amqps://…` (TLS, port 5671, certificates verified against the system's store or
/// `cacertfile`). The vhost is the path without its `/`, percent-decoded (`%2F` is `/`, the
/// default vhost; an empty path means `/` too). User and password default to `guest`. Query items:
///
/// - `queue_type=classic|quorum`: how queues are declared (classic by default); quorum queues are
///   replicated in a cluster and count deliveries exactly.
/// - `heartbeat=SECONDS`: the heartbeat asked of the broker (default 30; 0 turns it off).
/// - `connection_timeout=SECONDS`: how long connecting and logging in may take (default 10).
/// - `send_deadline=SECONDS`: how long a send may wait for the broker's confirm (default 12).
/// - `recycle=SECONDS`: how often a connection is replaced by a fresh one (default 3600; 0: never),
///   and `retirement=SECONDS`: how long the old one keeps settling its deliveries (default 60).
/// - `cacertfile=PATH`, `certfile=PATH`, `keyfile=PATH`: TLS files (amqps only).
/// - `failover=HOST[:PORT],HOST[:PORT]…`: the other nodes of a cluster, tried in turn when the
///   one connected to goes away (same user, vhost and TLS settings; the port defaults as above).
///
/// The password never appears in ``endpoint`` or in errors.
public struct AMQPConfiguration: Sendable {
    /// How queues are declared.
    public enum QueueType: String, Sendable {
        case classic, quorum
    }

    /// `amqp` or `amqps`.
    public var scheme: String
    public var host: String
    public var port: Int
    public var virtualHost: String
    public var user: String
    public var password: Secret
    public var queueType: QueueType
    /// The heartbeat interval asked of the broker; zero turns heartbeats off.
    public var heartbeat: Duration
    /// How long connecting, the TLS handshake and logging in may take.
    public var connectTimeout: Duration
    /// How long a send waits for the broker to confirm it before it fails.
    public var sendDeadline: Duration
    /// How often a connection is replaced by a fresh one; zero: never.
    public var recycleInterval: Duration
    /// How long a replaced connection keeps settling the deliveries it made before it closes.
    public var retirementPeriod: Duration
    /// PEM file of the certificate authorities to trust (amqps); nil: the system's store.
    public var caCertificateFile: String?
    /// PEM files of a client certificate and its key, for brokers that ask for one (amqps).
    public var clientCertificateFile: String?
    public var clientKeyFile: String?
    /// Other nodes of the same cluster, tried in turn after ``host`` and ``port`` when connecting.
    public var failover: [(host: String, port: Int)] = []

    /// The items a URL's query may hold.
    static let queryItems: Set<String> = [
        "queue_type", "heartbeat", "connection_timeout", "send_deadline", "recycle", "retirement",
        "cacertfile", "certfile", "keyfile", "failover",
    ]

    /// Reads an `amqp://` or `amqps://` URL.
    ///
    /// - Throws: ``IvyError/Code/unsupportedBackend`` for another scheme, ``IvyError/Code/invalidURL``
    ///   for a URL that does not parse or a query item that is unknown or out of range (the URL
    ///   printed with its password as `***`).
    public init(url: String) throws(IvyError) {
        let redacted = Redaction.redact(url: url)
        func invalid(_ detail: String) -> IvyError {
            IvyError(.invalidURL, endpoint: redacted, detail: detail)
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw invalid("expected amqp://user:password@host[:port]/vhost")
        }
        guard scheme == "amqp" || scheme == "amqps" else {
            throw IvyError(.unsupportedBackend, endpoint: redacted, detail: "expected amqp:// or amqps://")
        }
        self.scheme = scheme
        guard let host = components.host, !host.isEmpty else { throw invalid("no host") }
        self.host = host
        if let port = components.port {
            guard (1...65_535).contains(port) else { throw invalid("the port must be 1 to 65535") }
            self.port = port
        } else {
            port = scheme == "amqps" ? 5671 : 5672
        }
        func decoded(_ text: String?, _ what: String) throws(IvyError) -> String? {
            guard let text else { return nil }
            guard let value = text.removingPercentEncoding else {
                throw invalid("the \(what) is not percent-encoded UTF-8")
            }
            return value
        }
        user = try decoded(components.percentEncodedUser, "user").flatMap { $0.isEmpty ? nil : $0 } ?? "guest"
        password = Secret(try decoded(components.percentEncodedPassword, "password") ?? "guest")
        // RabbitMQ's URI spec: the path after the first "/" is the vhost, "%2F" included.
        var path = components.percentEncodedPath
        if path.hasPrefix("/") { path.removeFirst() }
        guard !path.contains("/") else {
            throw invalid("the vhost is one path segment; write a \"/\" in it as %2F")
        }
        virtualHost = try decoded(path, "vhost").flatMap { $0.isEmpty ? nil : $0 } ?? "/"

        queueType = .classic
        heartbeat = .seconds(30)
        connectTimeout = .seconds(10)
        sendDeadline = .seconds(12)
        recycleInterval = .seconds(3600)
        retirementPeriod = .seconds(60)
        for item in components.queryItems ?? [] {
            guard Self.queryItems.contains(item.name) else {
                throw invalid(
                    "unknown query item \"\(item.name)\"; known: \(Self.queryItems.sorted().joined(separator: ", "))"
                )
            }
            let value = item.value ?? ""
            func seconds(in range: ClosedRange<Double>) throws(IvyError) -> Duration {
                guard let seconds = Double(value), seconds.isFinite, range.contains(seconds) else {
                    throw invalid(
                        "\(item.name) must be seconds from \(Int(range.lowerBound)) to \(Int(range.upperBound))"
                    )
                }
                return .milliseconds(Int64((seconds * 1000).rounded()))
            }
            switch item.name {
            case "queue_type":
                guard let type = QueueType(rawValue: value) else {
                    throw invalid("queue_type must be classic or quorum")
                }
                queueType = type
            case "heartbeat": heartbeat = try seconds(in: 0...3600)
            case "connection_timeout": connectTimeout = try seconds(in: 0.001...3600)
            case "send_deadline": sendDeadline = try seconds(in: 0.001...3600)
            case "recycle": recycleInterval = try seconds(in: 0...(86_400 * 30))
            case "retirement": retirementPeriod = try seconds(in: 0...86_400)
            case "failover":
                failover = try Self.nodes(
                    value, defaultPort: scheme == "amqps" ? 5671 : 5672, invalid: invalid)
            default:
                guard scheme == "amqps" else { throw invalid("\(item.name) is for amqps:// only") }
                guard !value.isEmpty else { throw invalid("\(item.name) needs a path") }
                switch item.name {
                case "cacertfile": caCertificateFile = value
                case "certfile": clientCertificateFile = value
                default: clientKeyFile = value
                }
            }
        }
        guard (clientCertificateFile == nil) == (clientKeyFile == nil) else {
            throw invalid("certfile and keyfile go together")
        }
        try validate()
    }

    /// `HOST[:PORT],…`, an IPv6 address in brackets.
    private static func nodes(_ list: String, defaultPort: Int, invalid: (String) -> IvyError)
        throws(IvyError)
        -> [(host: String, port: Int)]
    {
        var nodes: [(host: String, port: Int)] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            guard let components = URLComponents(string: "amqp://\(item)"), let host = components.host,
                !host.isEmpty, components.path.isEmpty, components.user == nil, components.query == nil
            else {
                throw invalid("failover takes HOST[:PORT] items separated by commas")
            }
            let port = components.port ?? defaultPort
            guard (1...65_535).contains(port) else { throw invalid("a failover port must be 1 to 65535") }
            nodes.append((host, port))
        }
        guard nodes.count <= 16 else { throw invalid("failover names at most 16 nodes") }
        return nodes
    }

    /// Every node to try, this one first.
    var nodes: [(host: String, port: Int)] { [(host, port)] + failover }

    /// The same settings for another node of the cluster.
    func at(_ node: (host: String, port: Int)) -> AMQPConfiguration {
        var configuration = self
        configuration.host = node.host
        configuration.port = node.port
        configuration.failover = []
        return configuration
    }

    /// Checks the values a program may set after parsing.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the first field out of range.
    public func validate() throws(IvyError) {
        try IvyError.check("AMQPConfiguration.port", port, in: 1...65_535)
        try IvyError.check("AMQPConfiguration.heartbeat", heartbeat, in: .zero...(.seconds(3600)))
        try IvyError.check(
            "AMQPConfiguration.connectTimeout", connectTimeout, in: .milliseconds(1)...(.seconds(3600)))
        try IvyError.check(
            "AMQPConfiguration.sendDeadline", sendDeadline, in: .milliseconds(1)...(.seconds(3600)))
        try IvyError.check(
            "AMQPConfiguration.recycleInterval", recycleInterval, in: .zero...(.seconds(86_400 * 30)))
        try IvyError.check(
            "AMQPConfiguration.retirementPeriod", retirementPeriod, in: .zero...(.seconds(86_400)))
        guard !host.isEmpty else {
            throw IvyError(.invalidConfiguration, endpoint: endpoint, detail: "empty host")
        }
    }

    /// The broker for logs and errors, the password as `***`.
    public var endpoint: String {
        let vhost =
            virtualHost == "/"
            ? "" : virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return "\(scheme)://\(user):***@\(host):\(port)/\(vhost)"
    }
}
