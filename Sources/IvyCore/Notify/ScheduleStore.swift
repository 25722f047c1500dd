// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// A notifier that can elect one leader among workers and remember which schedule ticks were
/// sent (a capability), for periodic tasks (``TaskRegistry/schedule(_:cron:timeZone:_:)``).
///
/// Leases and claims live in the notifier's store, which every worker shares: Redis, or the
/// process for ``MemoryNotifier``.
public protocol ScheduleStore: Notifier {
    /// Takes lease `name` for `holder`, or renews it if `holder` holds it, for `duration` from
    /// now; returns whether `holder` holds it afterwards. A lease nobody renews lapses after
    /// its duration, and then anyone may take it.
    func lease(_ name: String, holder: String, for duration: Duration) async throws -> Bool

    /// Gives lease `name` up if `holder` holds it, so another may take it at once.
    func release(_ name: String, holder: String) async throws

    /// Claims `tick` (the id of a tick's call) of periodic task `task` (its id), due at
    /// `time`: true the first time, false while an earlier claim lasts (`duration` from when it
    /// was made). A claim also makes `time` the task's latest claimed tick, if it is later.
    func claim(_ tick: String, of task: String, at time: Date, for duration: Duration) async throws -> Bool

    /// The time of periodic task `task`'s latest claimed tick, if the store remembers one: a
    /// new leader catches up from there.
    func latestClaim(of task: String) async throws -> Date?
}
