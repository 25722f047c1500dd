// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import Synchronization
import IvyTestSupport
import Testing

extension AsyncStream where Element == IvyEvent {
    /// Waits for `count` events matching `predicate` and returns them.
    func collect(
        _ count: Int, within limit: Duration = .seconds(20), _ what: String,
        where predicate: @escaping @Sendable (IvyEvent) -> Bool
    ) async throws -> [IvyEvent] {
        try await withDeadline(limit, what) {
            var matches: [IvyEvent] = []
            for await event in self where predicate(event) {
                matches.append(event)
                if matches.count == count { return matches }
            }
            throw DeadlineExceeded(limit: limit, what: "\(what) (stream ended)")
        }
    }
}

/// A unique queue name per test, so suites can run in parallel on one broker.
func freshQueue(_ label: String = "t") -> String { "\(label)-\(UUID().uuidString.prefix(12).lowercased())" }

/// Counts calls and tracks the most that ran at once.
final class ConcurrencyProbe: Sendable {
    private let state = Mutex((running: 0, maximum: 0, total: 0))

    func enter() { state.withLock { $0.running += 1; $0.total += 1; $0.maximum = max($0.maximum, $0.running) } }
    func leave() { state.withLock { $0.running -= 1 } }
    var maximum: Int { state.withLock { $0.maximum } }
    var total: Int { state.withLock { $0.total } }
}

extension IvyEvent {
    var isStarted: Bool { if case .started = self { true } else { false } }
    var isSucceeded: Bool { if case .succeeded = self { true } else { false } }
    var isRetried: Bool { if case .retried = self { true } else { false } }
    var isFailed: Bool { if case .failed = self { true } else { false } }
    var isDeadLettered: Bool { if case .deadLettered = self { true } else { false } }
}
