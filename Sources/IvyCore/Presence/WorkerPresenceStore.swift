// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A notifier that keeps which workers are alive (a capability): each running worker
/// announces itself (``WorkerPresence``) every ``WorkerOptions/presenceInterval`` and withdraws
/// when it stops; an announcement not renewed within its lifetime lapses, so a killed worker
/// disappears on its own. `ivy dashboard` lists the workers from here.
public protocol WorkerPresenceStore: Notifier {
    /// Records `presence`, replacing the worker's previous announcement, for `lifetime` from now.
    func announce(_ presence: WorkerPresence, for lifetime: Duration) async throws
    /// Removes worker `id`'s announcement at once.
    func withdraw(_ id: String) async throws
    /// The announcements that have not lapsed, in no particular order. One that cannot be read
    /// (written by something else) is left out.
    func presentWorkers() async throws -> [WorkerPresence]
}
