// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore
internal import Synchronization

/// Asks the brokers and the notifier what the dashboard shows, once per interval, however many
/// pages watch: each backend's queues (sizes, paused), the workers alive, and throughput, which
/// it works out from the workers' announced tallies: each worker's calls ended between two of
/// its announcements, over the time between them (by its clock), summed over the workers.
///
/// The queues a backend shows are those named in ``Dashboard/Options/queues``, those that live
/// workers on it serve, and any it has shown before (a queue whose workers died stays in view).
final class DashboardSampler: Sendable {
    private let backends: [Dashboard.Backend]
    private let presence: (any WorkerPresenceStore)?
    private let namedQueues: [QueueName]
    private let interval: Duration
    /// Samples kept per queue for its sparkline.
    static let historyLength = 60
    /// How long a broker or the notifier has to answer, per sample.
    static let answerLimit = Duration.seconds(2)

    private struct State {
        /// Per backend: the queues shown, in the order first seen.
        var queues: [[QueueName]]
        /// Per backend and queue: throughput at each sample, the newest last.
        var throughput: [[QueueName: [Double]]]
        /// Per worker: its latest announcement's calls ended per queue, when it was made, and
        /// its rate per queue since the one before.
        var workerRates: [String: (ended: [String: Int], at: Date, rates: [String: Double])] = [:]
        var lastSampleAt: Date?
        var reports: [DashboardReport?]
        var workers: [WorkerPresence] = []
    }

    private let state: Mutex<State>

    init(
        backends: [Dashboard.Backend], presence: (any WorkerPresenceStore)?, namedQueues: [QueueName],
        interval: Duration
    ) {
        self.backends = backends
        self.presence = presence
        self.namedQueues = namedQueues
        self.interval = interval
        state = Mutex(
            State(
                queues: Array(repeating: namedQueues, count: backends.count),
                throughput: Array(repeating: [:], count: backends.count),
                reports: Array(repeating: nil, count: backends.count)))
    }

    /// The latest report of backend `index`; nil before the first sample.
    func report(of index: Int) -> DashboardReport? {
        state.withLock { $0.reports.indices.contains(index) ? $0.reports[index] : nil }
    }

    /// Every backend's latest report, once sampled.
    var reports: [DashboardReport] { state.withLock { $0.reports.compactMap { $0 } } }

    /// The workers alive at the latest sample.
    var workers: [WorkerPresence] { state.withLock { $0.workers } }

    /// Samples every interval until the calling task is cancelled.
    func run(context: @escaping @Sendable () -> (statuses: Bool, needsLogin: Bool)) async {
        while !Task.isCancelled {
            await sample(context: context())
            try? await Task.sleep(for: interval)
        }
    }

    /// Takes one sample of everything.
    func sample(context: (statuses: Bool, needsLogin: Bool)) async {
        var workers: [WorkerPresence] = []
        if let presence {
            workers = await answer(within: Self.answerLimit) { try await presence.presentWorkers() } ?? []
        }
        let now = Date()
        let rates = recordRates(of: workers, at: now)
        var reports: [DashboardReport] = []
        for (index, backend) in backends.enumerated() {
            let queues = queuesShown(on: index, serving: workers)
            let sizes = Dictionary(
                await backend.queues.sizes(of: queues, within: Self.answerLimit),
                uniquingKeysWith: { a, _ in a })
            let paused = await pausedQueues(among: queues, on: backend)
            let throughput = recordThroughput(rates, on: index, queues: queues)
            let queueReports = queues.map { queue in
                let size = sizes[queue].map { backend.queues.distinguishesStates ? $0 : $0.folded }
                return DashboardReport.Queue(
                    name: queue.rawValue, ready: size?.ready, delayed: size?.delayed,
                    reserved: size?.reserved,
                    dead: size?.dead, paused: paused?[queue],
                    error: size == nil ? "the broker did not tell its size in time" : nil,
                    throughput: throughput[queue] ?? [])
            }
            reports.append(
                DashboardReport(
                    backend: backends[index].report, backends: backends.map(\.report), sampledAt: now,
                    queues: queueReports, workers: workers.map(Self.workerReport),
                    failures: Self.failures(of: workers), statuses: context.statuses,
                    presence: presence != nil,
                    needsLogin: context.needsLogin))
        }
        state.withLock { state in
            state.workers = workers
            for (index, report) in reports.enumerated() { state.reports[index] = report }
        }
    }

    /// The queues backend `index` shows now, remembering new ones.
    private func queuesShown(on index: Int, serving workers: [WorkerPresence]) -> [QueueName] {
        let endpoint = backends[index].queues.endpoint
        let announced = workers.filter { backends.count == 1 || $0.backend == endpoint }
            .flatMap(\.queues).compactMap { try? QueueName($0) }
        return state.withLock { state in
            for queue in announced where !state.queues[index].contains(queue) {
                state.queues[index].append(queue)
            }
            return state.queues[index]
        }
    }

    /// Which of `queues` are paused, when the backend can pause them and tells in time.
    private func pausedQueues(among queues: [QueueName], on backend: Dashboard.Backend) async -> [QueueName:
        Bool]?
    {
        guard let pausable = backend.queues as? any PausableQueueBackend else { return nil }
        return await answer(within: Self.answerLimit) {
            try await withThrowingTaskGroup(of: (QueueName, Bool).self) { group in
                for queue in queues { group.addTask { (queue, try await pausable.isPaused(queue)) } }
                var paused: [QueueName: Bool] = [:]
                for try await (queue, isPaused) in group { paused[queue] = isPaused }
                return paused
            }
        }
    }

    /// Calls ended per second per queue name, summed over the workers: each worker's rate
    /// between its last two announcements. A worker seen for the first time has none yet,
    /// unless it started since the last sample: then it counts from zero at its start.
    private func recordRates(of workers: [WorkerPresence], at now: Date) -> [String: Double] {
        state.withLock { state in
            var total: [String: Double] = [:]
            var latest: [String: (ended: [String: Int], at: Date, rates: [String: Double])] = [:]
            for worker in workers {
                var ended: [String: Int] = [:]
                for tally in worker.tallies { ended[tally.queue, default: 0] += tally.ended }
                let startedSince = state.lastSampleAt.map { worker.startedAt > $0 } ?? false
                var entry =
                    state.workerRates[worker.id]
                    ?? (startedSince ? ([:], worker.startedAt, [:]) : (ended, worker.announcedAt, [:]))
                let seconds = worker.announcedAt.timeIntervalSince(entry.at)
                if seconds > 0 {
                    entry.rates = ended.mapValues { _ in 0 }
                    for (queue, count) in ended {
                        entry.rates[queue] = Double(max(0, count - (entry.ended[queue] ?? 0))) / seconds
                    }
                    entry.ended = ended
                    entry.at = worker.announcedAt
                }
                latest[worker.id] = entry
                for (queue, rate) in entry.rates { total[queue, default: 0] += rate }
            }
            state.workerRates = latest
            state.lastSampleAt = now
            return total
        }
    }

    /// Adds this sample's rates to each queue's history; returns each queue's history.
    private func recordThroughput(_ rates: [String: Double], on index: Int, queues: [QueueName])
        -> [QueueName: [Double]]
    {
        state.withLock { state in
            var series: [QueueName: [Double]] = [:]
            for queue in queues {
                var history = state.throughput[index][queue] ?? []
                history.append(rates[queue.rawValue] ?? 0)
                if history.count > Self.historyLength { history.removeFirst() }
                state.throughput[index][queue] = history
                series[queue] = history
            }
            return series
        }
    }

    private static func workerReport(_ worker: WorkerPresence) -> DashboardReport.Worker {
        DashboardReport.Worker(
            id: worker.id, name: worker.name, host: worker.host, pid: worker.pid, queues: worker.queues,
            backend: worker.backend, concurrency: worker.concurrency, running: worker.running,
            startedAt: worker.startedAt, announcedAt: worker.announcedAt, version: worker.version,
            succeeded: worker.tallies.reduce(0) { $0 + $1.succeeded },
            failed: worker.tallies.reduce(0) { $0 + $1.failed + $1.deadLettered })
    }

    /// Every worker's latest failures, the newest first (50 at most).
    private static func failures(of workers: [WorkerPresence]) -> [DashboardReport.Failure] {
        workers.flatMap { worker in
            worker.recentFailures.map { failure in
                DashboardReport.Failure(
                    worker: worker.name, kind: failure.kind, at: failure.at, task: failure.task,
                    taskID: failure.taskID, queue: failure.queue, attempt: failure.attempt,
                    error: failure.error)
            }
        }.sorted { $0.at > $1.at }.prefix(50).map { $0 }
    }
}
