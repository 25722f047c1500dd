// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Synchronization
import Testing

/// A unique queue name per test, so suites can run in parallel on one broker.
func freshQueue(_ label: String = "t") -> QueueName {
    try! QueueName("\(label)-\(UUID().uuidString.prefix(12).lowercased())")
}

/// Counts calls and tracks the most that ran at once.
final class ConcurrencyProbe: Sendable {
    private let state = Mutex((running: 0, maximum: 0, total: 0))

    func enter() {
        state.withLock {
            $0.running += 1
            $0.total += 1
            $0.maximum = max($0.maximum, $0.running)
        }
    }
    func leave() { state.withLock { $0.running -= 1 } }
    var maximum: Int { state.withLock { $0.maximum } }
    var total: Int { state.withLock { $0.total } }
}

extension InspectableQueueBackend {
    /// `size` as this backend can report it: folded into one count where it has only one.
    func comparable(_ size: QueueSize) -> QueueSize { distinguishesStates ? size : size.folded }
}
