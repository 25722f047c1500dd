// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyRedis
import IvyRedisNotify
import Testing

/// A backend the conformance suite runs against. Each broker module adds its case; the
/// suite itself does not change.
struct ConformanceBackend: Sendable, CustomTestStringConvertible {
    var name: String
    /// Opens a fresh backend and notifier; throws (or cancels the test) when the server is away.
    var open: @Sendable () async throws -> (backend: any InspectableQueueBackend, notifier: any Notifier)

    var testDescription: String { name }

    static let memory = ConformanceBackend(name: "memory") { (MemoryQueueBackend(), MemoryNotifier()) }

    /// `IVY_REDIS_URL`, else the port `make services-up` uses.
    static let redisURL = ProcessInfo.processInfo.environment["IVY_REDIS_URL"] ?? "redis://127.0.0.1:6390"

    static let redis = ConformanceBackend(name: "redis") {
        do {
            let backend = try await RedisStreamBackend.connect(url: redisURL)
            return (backend, try await RedisNotifier.connect(url: redisURL, logger: SilentLogger()))
        } catch {
            try requireService(redisURL, error)
        }
    }

    static let all: [ConformanceBackend] = [.memory, .redis]

    /// Skips the test with a message when run by hand; fails it when IVY_REQUIRE_SERVICES=1.
    static func requireService(_ url: String, _ error: any Error) throws -> Never {
        if ProcessInfo.processInfo.environment["IVY_REQUIRE_SERVICES"] == "1" {
            Issue.record("\(url) is required (IVY_REQUIRE_SERVICES=1) but unreachable: \(error)")
            throw error
        }
        try Test.cancel("\(url) unreachable (\(error)); run `make services-up`")
    }
}
