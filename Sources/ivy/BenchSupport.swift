// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Synchronization

/// A shared counter for bench lanes.
final class Counter: Sendable {
    private let storage = Atomic<Int>(0)
    func increment() -> Int { storage.add(1, ordering: .relaxed).newValue }
}

/// Counts failed calls across lanes.
final class ErrorCounter: Sendable {
    private let storage = Atomic<Int>(0)
    func add() { storage.add(1, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}

/// Results of concurrent lanes, by index.
final class ResultsBox<T: Sendable>: Sendable {
    private let storage: Mutex<[T?]>
    init(count: Int) { storage = Mutex(Array(repeating: nil, count: count)) }
    func set(_ index: Int, _ value: T?) { storage.withLock { $0[index] = value } }
    var values: [T?] { storage.withLock { $0 } }
}
