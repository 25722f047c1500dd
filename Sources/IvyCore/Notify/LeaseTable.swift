// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import Synchronization

/// Leases and claims that expire, in process (``MemoryNotifier``'s ``ScheduleStore``).
final class LeaseTable: Sendable {
    private struct State {
        var leases: [String: (holder: String, expiry: ContinuousClock.Instant)] = [:]
        var claims: [String: ContinuousClock.Instant] = [:]
        var latest: [String: Date] = [:]
        var writesSinceSweep = 0
    }

    private let state = Mutex(State())
    private let clock = ContinuousClock()

    func lease(_ name: String, holder: String, for duration: Duration) -> Bool {
        let now = clock.now
        return state.withLock { state in
            if let held = state.leases[name], held.expiry > now, held.holder != holder { return false }
            state.leases[name] = (holder, now + duration)
            return true
        }
    }

    func release(_ name: String, holder: String) {
        state.withLock { state in
            if state.leases[name]?.holder == holder { state.leases[name] = nil }
        }
    }

    func claim(_ tick: String, of task: String, at time: Date, for duration: Duration) -> Bool {
        let now = clock.now
        return state.withLock { state in
            defer { if state.latest[task].map({ $0 < time }) ?? true { state.latest[task] = time } }
            state.writesSinceSweep += 1
            if state.writesSinceSweep >= 1024 {
                state.writesSinceSweep = 0
                state.claims = state.claims.filter { $0.value > now }
            }
            if let expiry = state.claims[tick], expiry > now { return false }
            state.claims[tick] = now + duration
            return true
        }
    }

    func latestClaim(of task: String) -> Date? { state.withLock { $0.latest[task] } }
}
