// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import Synchronization
import Testing

/// A named timeout for awaiting events in tests.
struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TestTimeout`` if it has not finished within `limit`.
func withDeadline<T: Sendable>(
    _ limit: Duration = .seconds(20), _ what: String = "the operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TestTimeout(what: what) }
        return value
    }
}

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
            throw TestTimeout(what: "\(what) (stream ended)")
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

/// A value shared between test tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}
