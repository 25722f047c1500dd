// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyRedis
import IvyRedisNotify
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `rediss://` against the TLS Redis servers `scripts/services.sh up` starts (certificates from a
/// throwaway CA), and against a plain listener that records what a TLS client sends it.
@Suite("Redis over TLS")
struct RedisTLSTests {
    private func connect(_ url: String) async throws -> RedisConnection {
        do { return try await RedisConnection.connect(try RedisConfiguration(url: url)) } catch {
            try Services.unavailable("TLS Redis at \(Redaction.redact(url: url))", error)
        }
    }

    /// The connection error for `url`, or nil when it connected.
    private func connectionError(_ url: String) async throws -> IvyError? {
        do {
            let connection = try await RedisConnection.connect(try RedisConfiguration(url: url))
            _ = try await connection.command(RedisCommand("PING"))
            await connection.close()
            return nil
        } catch let error as IvyError {
            return error
        }
    }

    /// `url` with `item` added to its query.
    private func adding(_ item: String, to url: String) -> String {
        url + (url.contains("?") ? "&" : "?") + item
    }

    @Test func commandsPipelinesAndLargeValuesRoundTrip() async throws {
        let redis = try await connect(Services.redissURL)
        let key = "ivy-test:\(UUID().uuidString)"
        // Bigger than a TLS record (16 KiB) and than a socket buffer: partial writes and reads.
        let large = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let replies = try await redis.send([
            RedisCommand("SET", key, large), RedisCommand("GET", key), RedisCommand("DEL", key),
        ])
        #expect(replies[0] == .status("OK"))
        #expect(replies[1] == .string(large))
        #expect(replies[2] == .integer(1))
        // Many callers at once: replies read in bursts through the TLS stream, each to its caller.
        let echoed = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for index in 0..<500 {
                group.addTask {
                    (index, try await redis.command(RedisCommand("ECHO", "value-\(index)")).text)
                }
            }
            var echoed: [Int: String?] = [:]
            for try await (index, text) in group { echoed[index] = text }
            return echoed
        }
        #expect(echoed.count == 500)
        #expect(echoed.allSatisfy { $0.value == "value-\($0.key)" })
        await redis.close()
    }

    @Test func aUserWithAPasswordLogsInOverTLSAndAWrongPasswordIsRefused() async throws {
        let redis = try await connect(Services.redissPasswordURL)
        #expect(try await redis.command(RedisCommand("ACL", "WHOAMI")) == .string(Array("ivy".utf8)))
        await redis.close()
        let wrong = Services.redissPasswordURL.replacingOccurrences(of: "ivy-tls-password", with: "not-it")
        let error = try #require(try await connectionError(wrong))
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.hasPrefix("authentication failed: WRONGPASS") == true)
        #expect(!error.description.contains("not-it"))
    }

    @Test func aCertificateFromAnotherCAIsRefusedWithTheReason() async throws {
        _ = try await connect(Services.redissURL)
        let url =
            "rediss://127.0.0.1:\(try port(of: Services.redissURL))?ca=\(Services.queryValue(Services.redissWrongCA))"
        let error = try #require(try await connectionError(url))
        #expect(error.code == .connectionFailed)
        #expect(error.detail?.hasPrefix("TLS handshake failed: certificate verify failed") == true)
        // Without a CA the system's store is used, which does not know the throwaway CA either.
        let system = try #require(
            try await connectionError("rediss://127.0.0.1:\(try port(of: Services.redissURL))"))
        #expect(system.detail?.contains("certificate verify failed") == true)
    }

    @Test func theServerNameIsChecked() async throws {
        _ = try await connect(Services.redissURL)
        // The certificate names 127.0.0.1 and localhost; a name given for SNI is the one checked,
        // as a DNS name (without resolving it: a machine may have no /etc/hosts).
        let port = try port(of: Services.redissURL)
        let ca = Services.queryValue(try #require(try caFile(of: Services.redissURL)))
        let byName = try await connect("rediss://127.0.0.1:\(port)?ca=\(ca)&sni=localhost")
        #expect(try await byName.command(RedisCommand("PING")) == .status("PONG"))
        await byName.close()
        let error = try #require(
            try await connectionError("rediss://127.0.0.1:\(port)?ca=\(ca)&sni=example.com"))
        #expect(error.detail == "TLS handshake failed: certificate verify failed (hostname mismatch)")
    }

    @Test func insecureSkipsTheCheckAndSaysSo() async throws {
        _ = try await connect(Services.redissURL)
        let url =
            "rediss://127.0.0.1:\(try port(of: Services.redissURL))?ca=\(Services.queryValue(Services.redissWrongCA))&insecure=1"
        let logger = RecordingLogger()
        let notifier = try await RedisNotifier.connect(url: url, logger: logger)
        #expect(logger.count(containing: "TLS without certificate checks (insecure=1)") == 1)
        await notifier.close()
    }

    @Test func aServerThatWantsAClientCertificateGetsOne() async throws {
        let url = adding(
            "cert=\(Services.queryValue(Services.redissClientCertificate))&key=\(Services.queryValue(Services.redissClientKey))",
            to: Services.redissCertificateURL)
        let redis = try await connect(url)
        #expect(try await redis.command(RedisCommand("PING")) == .status("PONG"))
        await redis.close()
        // Without one the server ends the connection (TLS 1.3: after the client's handshake).
        let error = try #require(try await connectionError(Services.redissCertificateURL))
        #expect(error.code == .connectionFailed)
        // A key that is not the certificate's is refused before anything is sent.
        let mismatched = adding(
            "cert=\(Services.queryValue(Services.redissClientCertificate))&key=\(Services.queryValue(Services.redissClientCertificate))",
            to: Services.redissCertificateURL)
        let keyError = try #require(try await connectionError(mismatched))
        #expect(keyError.detail?.hasPrefix("cannot read the client key file") == true)
    }

    @Test func aPlainTextClientIsRefusedWithAHint() async throws {
        _ = try await connect(Services.redissURL)
        let error = try #require(
            try await connectionError("redis://127.0.0.1:\(try port(of: Services.redissURL))"))
        #expect(error.code == .connectionFailed)
        #expect(error.detail == "the server closed the connection (a TLS port? use rediss://)")
    }

    @Test func thePasswordNeverCrossesTheWireInClear() async throws {
        // A plain-text server: whatever a TLS client sends it is recorded. It answers as Redis
        // would to a line it cannot parse, so the handshake fails at once.
        let listener = try RecordingListener(answer: Array("-ERR unknown command\r\n".utf8))
        let password = "pw-\(UUID().uuidString)"
        let url = "rediss://ivy:\(password)@127.0.0.1:\(listener.port)?insecure=1"
        let error = try #require(try await connectionError(url))
        #expect(error.detail?.hasPrefix("TLS handshake failed") == true)
        #expect(!error.description.contains(password))
        let received = await listener.received()
        #expect(received.first == 0x16, "a TLS handshake record comes first")
        #expect(!received.isEmpty)
        #expect(received.firstRange(of: Array(password.utf8)) == nil)
        #expect(received.firstRange(of: Array("AUTH".utf8)) == nil)
    }

    @Test func urlsAreChecked() throws {
        for (url, detail) in [
            ("redis://127.0.0.1?ca=/x.pem", "ca is for rediss:// (TLS) only"),
            ("rediss://127.0.0.1?insecure=yes", "insecure must be 1 or 0"),
            ("rediss://127.0.0.1?cert=/c.pem", "cert and key go together"),
            ("rediss://127.0.0.1?ca=", "ca needs a file's path"),
            ("rediss://127.0.0.1?sni=a%20b", "sni must be a host name"),
        ] {
            #expect(throws: IvyError(.invalidURL, endpoint: Redaction.redact(url: url), detail: detail)) {
                try RedisConfiguration(url: url)
            }
        }
        let configuration = try RedisConfiguration(
            url: "rediss://u:secret@[::1]:6380/2?ca=/ca.pem&sni=redis.example")
        #expect(configuration.endpoint == "rediss://***@[::1]:6380/2")
        #expect(configuration.tls == RedisTLSOptions(caFile: "/ca.pem", serverName: "redis.example"))
        #expect(throws: IvyError.self) {
            var unix = try RedisConfiguration(url: "unix:///run/redis.sock")
            unix.tls = RedisTLSOptions()
            try unix.validate()
        }
    }

    private func port(of url: String) throws -> Int {
        guard case .tcp(_, let port) = try RedisConfiguration(url: url).address else { return 0 }
        return port
    }

    private func caFile(of url: String) throws -> String? {
        try RedisConfiguration(url: url).tls?.caFile
    }
}

/// A plain TCP listener on 127.0.0.1 that takes one connection, answers its first bytes with
/// `answer`, and keeps everything it receives until the client closes.
private final class RecordingListener: Sendable {
    let port: Int
    private let bytes = Locked<[UInt8]>([])
    private let done: AsyncStream<Void>
    private let descriptor: Int32

    init(answer: [UInt8]) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && listen(descriptor, 4) == 0
                    && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard descriptor >= 0, bound else {
            throw IvyError(.connectionFailed, detail: "listen: \(String(cString: strerror(errno)))")
        }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        let (done, ended) = AsyncStream<Void>.makeStream()
        self.done = done
        let bytes = bytes
        Thread.detachNewThread {
            defer { ended.finish() }
            let connection = accept(descriptor, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            var answered = false
            while true {
                let count = read(connection, &buffer, buffer.count)
                guard count > 0 else { return }
                bytes.withLock { $0 += buffer[..<count] }
                if !answered {
                    answered = true
                    _ = answer.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
                }
            }
        }
    }

    deinit { close(descriptor) }

    /// Everything received, once the client has closed the connection.
    func received() async -> [UInt8] {
        for await _ in done {}
        return bytes.value
    }
}
