// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Announces a running worker in its notifier's store (``WorkerPresenceStore``) every
/// ``WorkerOptions/presenceInterval`` until cancelled, then withdraws it.
struct PresenceAnnouncer: Sendable {
    let store: any WorkerPresenceStore
    let interval: Duration
    let options: WorkerOptions
    let queues: [QueueName]
    /// The queue backend's endpoint.
    let backend: String
    let metrics: WorkerMetrics
    let failures: FailureLog
    let inFlight: @Sendable () -> [QueueName: Int]

    /// Announces until the calling task is cancelled, then withdraws. A store that cannot be
    /// reached costs a warning when it starts failing, not the worker.
    func run() async {
        let suffix = String(OpenSSL.randomUInt64() & 0xFFFF_FFFF, radix: 16)
        let id = "\(options.name)#\(String(repeating: "0", count: 8 - suffix.count))\(suffix)"
        let startedAt = Date()
        let host = WorkerOptions.hostName
        var failing = false
        while !Task.isCancelled {
            let presence = WorkerPresence(
                id: id, name: options.name, host: host, pid: Int(getpid()), queues: queues.map(\.rawValue),
                backend: backend,
                concurrency: options.concurrency, running: inFlight().values.reduce(0, +),
                startedAt: startedAt, announcedAt: Date(), version: IvyVersion.current, tallies: tallies(),
                recentFailures: failures.latest())
            do {
                try await store.announce(presence, for: interval * 5)
                if failing { options.logger.info("announcing this worker again", ["store": store.endpoint]) }
                failing = false
            } catch {
                if !failing {
                    options.logger.warning(
                        "cannot announce this worker (dashboards will not list it): \(error)",
                        ["store": store.endpoint])
                }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
        // In a task of its own: this one is cancelled, and a store may refuse cancelled callers.
        // Bounded, so that a store out of reach does not hold the worker's stop up: the
        // announcement then lapses by itself.
        await Task { [store] in _ = await withTimeLimit(.seconds(2)) { try await store.withdraw(id) } }.value
    }

    private func tallies() -> [WorkerPresence.Tally] {
        metrics.snapshot().map { series, counts in
            WorkerPresence.Tally(
                task: series.task, queue: series.queue, scheduled: counts.scheduled, started: counts.started,
                succeeded: counts.succeeded,
                retried: counts.retried, failed: counts.failed, deadLettered: counts.deadLettered,
                runTime: counts.runTime, resultLatency: counts.resultLatency)
        }.sorted { ($0.queue, $0.task) < ($1.queue, $1.task) }
    }
}
