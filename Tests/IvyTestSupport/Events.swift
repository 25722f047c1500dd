// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore

extension AsyncStream where Element == IvyEvent {
    /// Waits for `count` events matching `predicate` and returns them.
    public func collect(
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

extension IvyEvent {
    public var isStarted: Bool { kind == .started }
    public var isSucceeded: Bool { kind == .succeeded }
    public var isRetried: Bool { kind == .retried }
    public var isFailed: Bool { kind == .failed }
    public var isDeadLettered: Bool { kind == .deadLettered }
}
