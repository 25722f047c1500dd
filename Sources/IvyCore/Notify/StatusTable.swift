// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import Synchronization

/// The statuses an in-process store keeps (``MemoryNotifier``), with the rules every store
/// follows: a status only moves forward, a write keeps what earlier ones said and it leaves
/// out, a retry of a call whose cancel was asked is answered `cancelled`, and each status
/// expires a retention after its last change.
final class StatusTable: Sendable {
    private struct Entry {
        var status: TaskStatus
        var expiry: ContinuousClock.Instant
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var writesSinceSweep = 0
    }

    let retention: Duration
    private let state = Mutex(State())
    private let clock = ContinuousClock()

    init(retention: Duration) {
        self.retention = retention
    }

    /// Records `status` unless a held one supersedes it; returns the state held afterwards.
    func record(_ status: TaskStatus) -> TaskStatus.State {
        let now = clock.now
        return state.withLock { state in
            state.writesSinceSweep += 1
            if state.writesSinceSweep >= 1024 { Self.sweep(&state, now: now) }
            let held = state.entries[status.id].flatMap { $0.expiry > now ? $0.status : nil }
            if let held, !status.supersedes(held) { return held.state }
            let new = held.map { status.keeping($0) } ?? status
            state.entries[status.id] = Entry(status: new, expiry: now + retention)
            let attempt = new.state == .retrying || new.state == .running
            return attempt && new.cancelRequested ? .cancelled : new.state
        }
    }

    func status(of id: String) -> TaskStatus {
        let now = clock.now
        return state.withLock { state in
            state.entries[id].flatMap { $0.expiry > now ? $0.status : nil } ?? .unknown(id)
        }
    }

    func cancel(_ id: String, reason: String) -> TaskStatus {
        let now = clock.now
        return state.withLock { state in
            guard var entry = state.entries[id], entry.expiry > now else { return .unknown(id) }
            switch entry.status.state {
            case .scheduled, .waiting, .retrying:
                entry.status.state = .cancelled
                entry.status.reason = reason
                entry.status.updatedAt = .now
            case .running:
                entry.status.cancelRequested = true
            case .succeeded, .failed, .deadLettered, .cancelled, .unknown:
                return entry.status
            }
            entry.expiry = now + retention
            state.entries[id] = entry
            return entry.status
        }
    }

    private static func sweep(_ state: inout State, now: ContinuousClock.Instant) {
        state.writesSinceSweep = 0
        state.entries = state.entries.filter { $0.value.expiry > now }
    }
}
