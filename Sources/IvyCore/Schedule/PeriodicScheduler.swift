// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Sends the calls of a worker's periodic tasks while the worker leads them (PROTOCOL.md §12).
///
/// Each periodic task has a lease in the ``ScheduleStore``; every worker that carries it tries
/// to take or renew the lease every third of its duration, and the one that holds it is the
/// task's leader. The leader sends one call per fire time ("tick"), whose id names the tick;
/// before it sends, it claims the tick in the store, so a tick whose claim another leader made
/// (a leader change mid-tick) is not sent again. A new leader starts after the latest claimed
/// tick, no further back than the catch-up window. A leader that dies between a claim and its
/// send loses that one tick: ticks are sent at most once.
final class PeriodicScheduler: Sendable {
    private let tasks: [PeriodicTask]
    private let store: any ScheduleStore
    private let statusStore: (any TaskStatusStore)?
    private let send: @Sendable (TaskMessage, QueueName) async throws -> Void
    private let holder: String
    private let options: ScheduleOptions
    private let logger: any IvyLogger

    /// - Parameters:
    ///   - holder: This worker's name in leases: unique among the workers (name and a random
    ///     suffix).
    ///   - send: Sends a tick's call to its queue.
    init(
        tasks: [PeriodicTask], store: any ScheduleStore, holder: String, options: ScheduleOptions,
        logger: any IvyLogger, send: @escaping @Sendable (TaskMessage, QueueName) async throws -> Void
    ) {
        self.tasks = tasks
        self.store = store
        statusStore = store.activeStatusStore
        self.holder = holder
        self.options = options
        self.logger = logger
        self.send = send
    }

    /// Leads and sends until the calling task is cancelled, then gives up the leases it holds.
    func run() async {
        // Per periodic task led: the time up to which its ticks were seen to.
        var seen: [String: Date] = [:]
        let renewal = options.leaseDuration / 3
        while !Task.isCancelled {
            var wake = Date().addingTimeInterval(renewal.inSeconds)
            for task in tasks where !Task.isCancelled {
                guard await leads(task, led: seen[task.id] != nil) else {
                    seen[task.id] = nil
                    continue
                }
                let now = Date()
                let earliest = now.addingTimeInterval(-options.catchUp.inSeconds)
                let start: Date
                if let last = seen[task.id] {
                    // A leader held up past the window (a paused process) skips what lies before
                    // it; `start` is never before `last`, so `seen` never moves back, even should
                    // the wall clock step back.
                    start = max(last, earliest)
                } else {
                    start = await catchUpStart(task, now: now)
                }
                var handled = start
                var tick = task.schedule.next(after: start)
                while let due = tick, due <= now, !Task.isCancelled {
                    // Not cut short by shutdown between a claim and its send.
                    guard await Task(operation: { await self.fire(task, at: due) }).value else { break }
                    handled = due
                    tick = task.schedule.next(after: due)
                }
                if tick.map({ $0 > now }) ?? true { handled = max(handled, now) }
                seen[task.id] = handled
                if let next = tick, next < wake { wake = next }
            }
            let pause = wake.timeIntervalSinceNow
            if pause > 0 { try? await Task.sleep(for: .milliseconds(Int64((pause * 1000).rounded(.up)))) }
        }
        for task in tasks where seen[task.id] != nil {
            // Another worker takes over at once rather than when the lease runs out.
            try? await store.release(Self.leaseName(task), holder: holder)
        }
    }

    /// Takes or renews `task`'s lease; whether this worker leads it.
    private func leads(_ task: PeriodicTask, led: Bool) async -> Bool {
        let leads: Bool
        do {
            leads = try await store.lease(Self.leaseName(task), holder: holder, for: options.leaseDuration)
        } catch {
            logger.warning(
                "renewing a schedule's lease failed",
                ["task": task.taskName, "schedule": "\(task.schedule)", "error": "\(error)"])
            leads = false
        }
        if leads != led {
            logger.info(
                leads ? "leading a schedule" : "no longer leading a schedule",
                ["task": task.taskName, "schedule": "\(task.schedule)", "holder": holder])
        }
        return leads
    }

    /// Where a new leader starts: after the latest tick claimed (a takeover sends what its
    /// predecessor had not), but no further back than the catch-up window (ticks missed in a
    /// full outage before it are skipped); from now where no tick was ever claimed.
    private func catchUpStart(_ task: PeriodicTask, now: Date) async -> Date {
        let earliest = now.addingTimeInterval(-options.catchUp.inSeconds)
        do {
            guard let latest = try await store.latestClaim(of: task.id) else { return now }
            return max(latest, earliest)
        } catch {
            logger.warning(
                "reading a schedule's latest tick failed", ["task": task.taskName, "error": "\(error)"])
            return now
        }
    }

    /// Claims the tick and sends its call, unless another leader claimed it. Returns false when
    /// the claim could not be made (the store is out of reach): the tick is tried again on the
    /// next round, within the catch-up window.
    private func fire(_ task: PeriodicTask, at time: Date) async -> Bool {
        let id = task.tickID(at: time)
        do {
            // Kept past the window in which any leader looks back for it.
            let lasting = options.catchUp + options.leaseDuration + .seconds(3_600)
            guard try await store.claim(id, of: task.id, at: time, for: lasting) else {
                return true
            }
        } catch {
            logger.warning("claiming a tick failed; it is tried again", ["task.id": id, "error": "\(error)"])
            return false
        }
        let message = TaskMessage(name: task.taskName, args: task.arguments, id: id, createdAt: Date())
        do {
            try await send(message, task.queue)
        } catch {
            logger.error(
                "sending a tick's call failed; the tick is lost", ["task.id": id, "error": "\(error)"])
            return true
        }
        logger.debug("sent a tick's call", ["task.id": id, "queue": task.queue.rawValue])
        statusStore?.record(
            TaskStatus(
                id: id, state: .waiting, taskName: task.taskName, queue: task.queue.rawValue,
                updatedAt: message.createdAt)
        ) { _ in }
        return true
    }

    static func leaseName(_ task: PeriodicTask) -> String { "schedule:\(task.id)" }
}
