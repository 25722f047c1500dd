// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Workers' announcements that lapse, in process (``MemoryNotifier``'s
/// ``WorkerPresenceStore``).
final class PresenceTable: Sendable {
    private let entries = Mutex<[String: (presence: WorkerPresence, expiry: ContinuousClock.Instant)]>([:])
    private let clock = ContinuousClock()

    func announce(_ presence: WorkerPresence, for lifetime: Duration) {
        let now = clock.now
        entries.withLock { entries in
            entries = entries.filter { $0.value.expiry > now }
            entries[presence.id] = (presence, now + lifetime)
        }
    }

    func withdraw(_ id: String) {
        entries.withLock { $0[id] = nil }
    }

    func present() -> [WorkerPresence] {
        let now = clock.now
        return entries.withLock { entries in entries.values.filter { $0.expiry > now }.map(\.presence) }
    }
}
