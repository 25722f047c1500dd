// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyRedis
import IvyRedisNotify
import IvyTestSupport
import Testing

/// A backend the conformance suite runs against. Each broker module adds its case; the
/// suite itself does not change.
struct ConformanceBackend: Sendable, CustomTestStringConvertible {
    var name: String
    /// Opens a fresh backend and notifier; throws (or cancels the test) when the server is away.
    var open: @Sendable () async throws -> (backend: any InspectableQueueBackend, notifier: any Notifier)

    var testDescription: String { name }

    static let memory = ConformanceBackend(name: "memory") { (MemoryQueueBackend(), MemoryNotifier()) }

    static let redis = ConformanceBackend(name: "redis") {
        do {
            let backend = try await RedisStreamBackend.connect(url: Services.redisURL)
            return (backend, try await RedisNotifier.connect(url: Services.redisURL, logger: SilentLogger()))
        } catch {
            try Services.unavailable("Redis at \(Services.redisURL)", error)
        }
    }

    static let all: [ConformanceBackend] = [.memory, .redis]
}
