// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The servers integration tests talk to: loopback defaults, overridable by the environment.
public enum Services {
    /// `IVY_REDIS_URL`, else the instance `make services-up` starts.
    public static let redisURL =
        ProcessInfo.processInfo.environment["IVY_REDIS_URL"] ?? "redis://127.0.0.1:6390"

    /// `IVY_IRONMQ_URL`, else the local IronMQ server `make services-up` starts
    /// (`Tools/ironmq-emulator`), whose shortest reservation is 1 s so that tests of expiry run
    /// in seconds (Iron.io's is 30 s).
    public static let ironMQURL =
        ProcessInfo.processInfo.environment["IVY_IRONMQ_URL"]
        ?? "ironmq+http://ivy-test-token@127.0.0.1:8690/ivytest?min_timeout=1"

    /// `IVY_AMQP_URL`, else the private RabbitMQ node `make services-up` starts (vhost `ivytest`).
    public static let amqpURL =
        ProcessInfo.processInfo.environment["IVY_AMQP_URL"]
        ?? "amqp://ivy:ivy-test-password@127.0.0.1:5690/ivytest"

    /// `IVY_AMQPS_URL`, else the TLS listener of that node (port 5691), whose certificate is for
    /// IP:127.0.0.1 only and signed by the throwaway CA `scripts/services.sh up` makes with
    /// openssl in `.services/rabbitmq/tls/ca.pem`, the URL's `cacertfile`.
    public static let amqpsURL =
        ProcessInfo.processInfo.environment["IVY_AMQPS_URL"]
        ?? "amqps://ivy:ivy-test-password@127.0.0.1:5691/ivytest?cacertfile="
        + queryValue(tlsDirectory.appendingPathComponent("ca.pem").path)

    /// `IVY_AMQPS_WRONG_CA`, else `.services/rabbitmq/tls/wrong-ca.pem`: the certificate of
    /// another CA `scripts/services.sh up` makes, one that signed nothing of the node's.
    public static let amqpsWrongCA =
        ProcessInfo.processInfo.environment["IVY_AMQPS_WRONG_CA"]
        ?? tlsDirectory.appendingPathComponent("wrong-ca.pem").path

    /// `IVY_REDISS_URL`, else the TLS Redis `scripts/services.sh up` starts on port 6392 (no
    /// plain-text port), whose certificate is for IP:127.0.0.1 and localhost, signed by the
    /// throwaway CA in `.services/redis-tls/tls/ca.pem`, the URL's `ca`.
    public static let redissURL =
        ProcessInfo.processInfo.environment["IVY_REDISS_URL"]
        ?? "rediss://127.0.0.1:6392?ca=" + queryValue(redisTLSFile("ca.pem"))

    /// `IVY_REDISS_PASSWORD_URL`, else that server as its ACL user `ivy`, who has a password.
    public static let redissPasswordURL =
        ProcessInfo.processInfo.environment["IVY_REDISS_PASSWORD_URL"]
        ?? "rediss://ivy:ivy-tls-password@127.0.0.1:6392?ca=" + queryValue(redisTLSFile("ca.pem"))

    /// `IVY_REDISS_CERT_URL`, else the TLS Redis on port 6393 that wants a client certificate;
    /// the URL has none.
    public static let redissCertificateURL =
        ProcessInfo.processInfo.environment["IVY_REDISS_CERT_URL"]
        ?? "rediss://127.0.0.1:6393?ca=" + queryValue(redisTLSFile("ca.pem"))

    /// The certificate files of the TLS Redis servers: `IVY_REDISS_WRONG_CA` (a CA that signed
    /// nothing of theirs), `IVY_REDISS_CLIENT_CERT` and `IVY_REDISS_CLIENT_KEY` (a client
    /// certificate their CA signed), else the files `scripts/services.sh up` makes.
    public static let redissWrongCA =
        ProcessInfo.processInfo.environment["IVY_REDISS_WRONG_CA"] ?? redisTLSFile("wrong-ca.pem")
    public static let redissClientCertificate =
        ProcessInfo.processInfo.environment["IVY_REDISS_CLIENT_CERT"] ?? redisTLSFile("client.pem")
    public static let redissClientKey =
        ProcessInfo.processInfo.environment["IVY_REDISS_CLIENT_KEY"] ?? redisTLSFile("client-key.pem")

    /// `IVY_REDIS_CLUSTER_URL`, else the Redis Cluster `scripts/services.sh up` starts: three
    /// masters and three replicas on 6401-6406, the three masters as seeds.
    public static let redisClusterURL =
        ProcessInfo.processInfo.environment["IVY_REDIS_CLUSTER_URL"]
        ?? "redis+cluster://127.0.0.1:6401,127.0.0.1:6402,127.0.0.1:6403/"

    private static func redisTLSFile(_ name: String) -> String {
        repository.appendingPathComponent(".services/redis-tls/tls").appendingPathComponent(name).path
    }

    /// The checkout this file is in.
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Where `scripts/services.sh up` keeps the RabbitMQ node's certificates.
    private static let tlsDirectory = repository.appendingPathComponent(".services/rabbitmq/tls")

    /// A path as a URL's query value, percent-encoded as `scripts/services.sh env` does.
    public static func queryValue(_ path: String) -> String {
        let kept = CharacterSet(charactersIn: "/._~-").union(
            CharacterSet(charactersIn: "a"..."z")
        ).union(CharacterSet(charactersIn: "A"..."Z")).union(
            CharacterSet(charactersIn: "0"..."9"))
        return path.addingPercentEncoding(withAllowedCharacters: kept) ?? path
    }

    /// Runs `rabbitmqctl` against the RabbitMQ node `scripts/services.sh up` started, through
    /// `scripts/services.sh ctl` (so with the same `IVY_AMQP_PORT` and `IVY_RABBITMQ_*`
    /// variables), and returns its output.
    ///
    /// - Throws: ``CommandFailed`` when it exits with a failure, as it does when that node is
    ///   not running (a broker elsewhere, named by `IVY_AMQP_URL`).
    public static func rabbitmqctl(_ arguments: [String]) async throws -> String {
        let process = try IvyProcess(
            executable: URL(fileURLWithPath: "/bin/bash"),
            [repository.appendingPathComponent("scripts/services.sh").path, "ctl"] + arguments)
        let finished = await process.finish()
        guard finished.status == 0 else {
            throw CommandFailed(
                command: "rabbitmqctl \(arguments.joined(separator: " "))", output: finished.stderr)
        }
        return finished.stdout
    }

    /// The broker's id of the connection with this `connection_name`, from `rabbitmqctl`
    /// (lines of the pid, a tab and the client properties), for `close_connection`.
    public static func rabbitMQConnectionPid(named name: String) async throws -> String {
        let output = try await rabbitmqctl(["-s", "list_connections", "pid", "client_properties"])
        for line in output.split(separator: "\n") where line.contains("\"\(name)\"") {
            if let pid = line.split(separator: "\t").first, pid.hasPrefix("<") { return String(pid) }
        }
        throw CommandFailed(command: "rabbitmqctl list_connections", output: "no connection \(name)")
    }

    /// A helper program that exited with a failure.
    public struct CommandFailed: Error, CustomStringConvertible {
        public var command: String
        public var output: String
        public var description: String { "\(command) failed: \(output)" }

        public init(command: String, output: String) {
            self.command = command
            self.output = output
        }
    }

    /// Whether a missing server fails the run (`make test` sets `IVY_REQUIRE_SERVICES=1`).
    public static var areRequired: Bool { ProcessInfo.processInfo.environment["IVY_REQUIRE_SERVICES"] == "1" }

    /// Skips the test with a message when run by hand; fails it when services are required.
    public static func unavailable(_ what: String, _ error: any Error) throws -> Never {
        if areRequired {
            Issue.record("\(what) is required (IVY_REQUIRE_SERVICES=1) but unavailable: \(error)")
            throw error
        }
        try Test.cancel("\(what) unavailable (\(error)); run `make services-up`")
    }

    /// Whether something accepts TCP connections on `host`:`port` (IPv4 loopback or a name),
    /// within two seconds.
    public static func accepts(host: String, port: Int) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &results) == 0, let first = results else {
            return false
        }
        defer { freeaddrinfo(results) }
        let socket = Glibc.socket(
            first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return connect(socket, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0
    }

    /// The path of an executable on PATH, such as `redis-server`.
    public static func executable(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
