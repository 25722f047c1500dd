// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyAMQP
import IvyRedis
import IvyRedisNotify
import IvyTestSupport
import Testing

/// A backend the conformance suite runs against. Each broker module adds its case; the
/// suite itself does not change.
struct ConformanceBackend: Sendable, CustomTestStringConvertible {
    var name: String
    /// The URL an `ivy worker` in a process of its own serves, for the backends that have one.
    var processURL: String? = nil
    /// Opens a fresh backend and notifier; throws (or cancels the test) when the server is away.
    var open: @Sendable () async throws -> (backend: any InspectableQueueBackend, notifier: any Notifier)

    var testDescription: String { name }

    static let memory = ConformanceBackend(name: "memory") { (MemoryQueueBackend(), MemoryNotifier()) }

    /// The backends a worker in another process can serve.
    static var outOfProcess: [ConformanceBackend] { all.filter { $0.processURL != nil } }

    static let redis = redis("redis", url: Services.redisURL)
    /// Redis over TLS, as a user with a password: the same suite through `rediss://`.
    static let redisTLS = redis("redis-tls", url: Services.redissPasswordURL)
    /// A Redis Cluster of three masters: the same suite, each queue's keys on the master of its
    /// slot, statuses and results on theirs.
    static let redisCluster = redis("redis-cluster", url: Services.redisClusterURL)

    private static func redis(_ name: String, url: String) -> ConformanceBackend {
        ConformanceBackend(name: name, processURL: url) {
            do {
                // Liveness has its own tests; here a beat thread that a loaded machine holds up
                // for a few seconds must not make a live consumer's reservations look abandoned.
                let backend = try await RedisStreamBackend.connect(url: url, livenessTimeout: .seconds(60))
                return (backend, try await RedisNotifier.connect(url: url, logger: SilentLogger()))
            } catch {
                try Services.unavailable("Redis at \(Redaction.redact(url: url))", error)
            }
        }
    }

    static let ironMQ = ConformanceBackend(name: "ironmq", processURL: Services.ironMQURL) {
        do {
            // IronMQ carries no results: the notifier is in-process, like the harness's worker.
            return (try await IronMQBackend.connect(url: Services.ironMQURL), MemoryNotifier())
        } catch {
            try Services.unavailable("IronMQ at \(Redaction.redact(url: Services.ironMQURL))", error)
        }
    }

    /// RabbitMQ's quorum queues, which count deliveries exactly; classic queues are checked by
    /// the same suite too.
    static let amqpQuorum = amqp("amqp-quorum", queueType: "quorum")
    static let amqpClassic = amqp("amqp-classic", queueType: "classic")

    private static func amqp(_ name: String, queueType: String) -> ConformanceBackend {
        let url = Services.amqpURL + (Services.amqpURL.contains("?") ? "&" : "?") + "queue_type=\(queueType)"
        return ConformanceBackend(name: name, processURL: url) {
            do {
                // AMQP carries no results: the notifier is in-process, like the harness's worker.
                return (try await AMQPBackend.connect(url: url, logger: SilentLogger()), MemoryNotifier())
            } catch {
                try Services.unavailable("RabbitMQ at \(Redaction.redact(url: url))", error)
            }
        }
    }

    /// The backends the suite runs on. Redis is left out when it cannot be reached and services
    /// are not required: a test case that cancels itself inside a parameterized test is reported
    /// as passed, so the left-out cases are reported as skipped by ``ConformanceCoverageTests``.
    static let all: [ConformanceBackend] =
        [.memory] + (redisUnreachable == nil ? [.redis] : [])
        + (redisClusterUnreachable == nil ? [.redisCluster] : [])
        + (ironMQUnreachable == nil ? [.ironMQ] : [])
        + (amqpUnreachable == nil ? [.amqpQuorum, .amqpClassic] : [])

    /// ``all`` and Redis over TLS, for the queue contract and the statuses: TLS changes only the
    /// transport, which these exercise in every way the rest would again, each test case a
    /// load on the machine that the whole suite shares.
    static let withTransports: [ConformanceBackend] = all + (redisTLSUnreachable == nil ? [.redisTLS] : [])

    /// Why RabbitMQ cannot be reached, as for Redis.
    static let amqpUnreachable: String? = {
        guard !Services.areRequired else { return nil }
        guard let configuration = try? AMQPConfiguration(url: Services.amqpURL),
            Services.accepts(host: configuration.host, port: configuration.port)
        else { return "RabbitMQ at \(Redaction.redact(url: Services.amqpURL)) unavailable" }
        return nil
    }()

    /// Why the IronMQ server cannot be reached, as for Redis.
    static let ironMQUnreachable: String? = {
        guard !Services.areRequired else { return nil }
        guard let configuration = try? IronMQConfiguration(url: Services.ironMQURL),
            Services.accepts(host: configuration.host, port: configuration.port)
        else { return "IronMQ at \(Redaction.redact(url: Services.ironMQURL)) unavailable" }
        return nil
    }()

    /// Why Redis cannot be reached, checked once before the suite runs; nil when it can be, or
    /// when services are required (then its cases run and fail).
    static let redisUnreachable = redisUnreachable(Services.redisURL)
    static let redisTLSUnreachable = redisUnreachable(Services.redissPasswordURL)
    static let redisClusterUnreachable = redisUnreachable(Services.redisClusterURL)

    private static func redisUnreachable(_ url: String) -> String? {
        guard !Services.areRequired else { return nil }
        do {
            var configuration = try RedisConfiguration(url: url)
            configuration.connectTimeout = .seconds(2)
            configuration.commandTimeout = .seconds(2)
            _ = try RedisContext(configuration)
            return nil
        } catch {
            return "Redis at \(Redaction.redact(url: url)) unavailable (\(error))"
        }
    }
}

/// Says which backends the conformance suite left out, as a skipped test.
@Suite("Conformance coverage")
struct ConformanceCoverageTests {
    @Test func everyBackendWhoseServerIsUpIsCovered() throws {
        let missing = [
            ConformanceBackend.redisUnreachable, ConformanceBackend.redisTLSUnreachable,
            ConformanceBackend.redisClusterUnreachable,
            ConformanceBackend.ironMQUnreachable,
            ConformanceBackend.amqpUnreachable,
        ].compactMap { $0 }
        if !missing.isEmpty {
            try Test.cancel(
                "\(missing.joined(separator: "; ")): the conformance suite left them out; run `make services-up`"
            )
        }
        #expect(
            ConformanceBackend.withTransports.map(\.name) == [
                "memory", "redis", "redis-cluster", "ironmq", "amqp-quorum", "amqp-classic", "redis-tls",
            ])
    }
}
