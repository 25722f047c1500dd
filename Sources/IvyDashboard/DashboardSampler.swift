// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore
internal import Synchronization

/// Asks the brokers and the notifier what the dashboard shows, once per interval, however many
/// pages watch: each backend's queues (sizes, paused), the workers alive, and throughput, which
/// it works out from the workers' announced tallies: each worker's calls ended between two of
/// its announcements, over the time between them (by its clock), summed over the workers of a
/// backend.
///
/// The queues a backend shows are those named in ``Dashboard/Options/queues``, those that live
/// workers on it serve (their announced backend is its endpoint), and any it has shown before,
/// up to ``rememberedQueueLimit`` (a queue whose workers died stays in view).
final class DashboardSampler: Sendable {
    private let backends: [Dashboard.Backend]
    private let presence: (any WorkerPresenceStore)?
    private let interval: Duration
    private let logger: any IvyLogger
    /// Samples kept per queue for its sparkline.
    static let historyLength = 60
    /// How long a broker or the notifier has to answer, per sample.
    static let answerLimit = Duration.seconds(2)
    /// Queues learnt from announcements that a backend keeps showing, at most.
    static let rememberedQueueLimit = 200
    /// Samples the notifier may miss in a row before the workers last seen are dropped.
    static let missedSamplesKept = 10

    /// One worker's latest announcement as the rates were worked out from it.
    private struct WorkerRate {
        var backend: String
        /// Calls ended per queue, as announced.
        var ended: [String: Int]
        var at: Date
        /// Calls ended per second per queue since its announcement before.
        var rates: [String: Double] = [:]
    }

    private struct State {
        /// Per backend: the queues shown, in the order first seen.
        var queues: [[QueueName]]
        /// Per backend and queue: throughput at each sample, the newest last.
        var throughput: [[QueueName: [Double]]]
        var workerRates: [String: WorkerRate] = [:]
        var lastSampleAt: Date?
        var reports: [DashboardReport?]
        var workers: [WorkerPresence] = []
        /// Backends whose previous questions have not come back yet: they are not asked again
        /// until they have, so a broker that hangs costs one stuck question, not one a second.
        var waitingOn: Set<Int> = []
        /// Per backend, its latest questions, cancelled when the dashboard closes.
        var asking: [Int: Task<Void, Never>] = [:]
        /// Samples in a row the notifier did not answer.
        var notifierMissed = 0
    }

    /// What a backend told of its queues within a sample.
    private final class Answers: Sendable {
        private let collected = Mutex<(sizes: [QueueName: QueueSize], paused: [QueueName: Bool])>(([:], [:]))

        func add(_ size: QueueSize, of queue: QueueName) { collected.withLock { $0.sizes[queue] = size } }
        func add(_ paused: Bool, of queue: QueueName) { collected.withLock { $0.paused[queue] = paused } }
        var sizes: [QueueName: QueueSize] { collected.withLock { $0.sizes } }
        var paused: [QueueName: Bool] { collected.withLock { $0.paused } }
    }

    private let state: Mutex<State>

    init(
        backends: [Dashboard.Backend], presence: (any WorkerPresenceStore)?, namedQueues: [QueueName],
        interval: Duration, logger: any IvyLogger
    ) {
        self.backends = backends
        self.presence = presence
        self.interval = interval
        self.logger = logger
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
        cancelQuestions()
    }

    /// Takes one sample of everything.
    func sample(context: (statuses: Bool, needsLogin: Bool)) async {
        let now = Date()
        var workersError: String?
        var workers = state.withLock { $0.workers }
        if let presence {
            if let present = await withTimeLimit(Self.answerLimit, { try await presence.presentWorkers() }) {
                workers = present
                recordRates(of: workers, at: now)
                noteNotifier(answered: true, endpoint: presence.endpoint)
            } else {
                // The last workers known stay, with their rates, for a few samples: a notifier
                // that missed one does not empty the page.
                workersError = "the notifier did not answer (in time): workers as last seen"
                if noteNotifier(answered: false, endpoint: presence.endpoint) > Self.missedSamplesKept {
                    workers = []
                    recordRates(of: [], at: now)
                }
            }
        }
        var reports: [DashboardReport] = []
        let workerReports = workers.map(Self.workerReport)
        let failures = Self.failures(of: workers)
        for backend in backends {
            let queues = queuesShown(on: backend, serving: workers)
            let (sizes, paused) = await ask(backend, about: queues)
            let throughput = recordThroughput(on: backend, queues: queues)
            let queueReports = queues.map { queue in
                let size = sizes?[queue].map { backend.inspector.distinguishesStates ? $0 : $0.folded }
                return DashboardReport.Queue(
                    name: queue.rawValue, ready: size?.ready, delayed: size?.delayed,
                    reserved: size?.reserved,
                    dead: size?.dead, paused: paused?[queue],
                    error: size != nil
                        ? nil
                        : sizes == nil
                            ? "still waiting for the broker's answer to an earlier question"
                            : "the broker did not tell its size in time",
                    throughput: throughput[queue] ?? [])
            }
            reports.append(
                DashboardReport(
                    backend: backend.report, backends: backends.map(\.report), sampledAt: now,
                    queues: queueReports, workers: workerReports, failures: failures,
                    statuses: context.statuses,
                    presence: presence != nil, workersError: workersError, needsLogin: context.needsLogin))
        }
        state.withLock { state in
            state.workers = workers
            for (index, report) in reports.enumerated() { state.reports[index] = report }
        }
    }

    /// Counts the notifier's missed samples, logging when it starts and stops missing them;
    /// returns how many in a row it has missed.
    @discardableResult
    private func noteNotifier(answered: Bool, endpoint: String) -> Int {
        let missed = state.withLock { state in
            defer { state.notifierMissed = answered ? 0 : state.notifierMissed + 1 }
            return state.notifierMissed
        }
        if answered, missed > 0 {
            logger.info("the dashboard's notifier answers again", ["notifier": endpoint])
        } else if !answered, missed == 0 {
            logger.warning(
                "the dashboard's notifier failed or did not answer in time", ["notifier": endpoint])
        }
        return answered ? 0 : missed + 1
    }

    /// The sizes of `queues` and which are paused, those the broker told within
    /// ``answerLimit``; nil sizes while it has not answered every question of an earlier
    /// sample. The questions are not bounded themselves: a broker that does not answer (or
    /// ignores cancellation) holds the backend in `waitingOn` until it does, so it is asked
    /// once, not once a sample.
    private func ask(_ backend: Dashboard.Backend, about queues: [QueueName]) async
        -> (sizes: [QueueName: QueueSize]?, paused: [QueueName: Bool]?)
    {
        let index = backend.index
        let free = state.withLock { state in state.waitingOn.insert(index).inserted }
        guard free else { return (nil, nil) }
        let answers = Answers()
        let asking = Task {
            defer { _ = self.state.withLock { $0.waitingOn.remove(index) } }
            let pausable = backend.inspector as? any PausableQueueBackend
            await withTaskGroup(of: Void.self) { group in
                for queue in queues {
                    group.addTask {
                        if let size = try? await backend.inspector.size(of: queue) {
                            answers.add(size, of: queue)
                        }
                    }
                    if let pausable {
                        group.addTask {
                            if let paused = try? await pausable.isPaused(queue) {
                                answers.add(paused, of: queue)
                            }
                        }
                    }
                }
            }
        }
        state.withLock { $0.asking[index] = asking }
        _ = await withTimeLimit(Self.answerLimit) { await asking.value }
        return (answers.sizes, backend.inspector is any PausableQueueBackend ? answers.paused : nil)
    }

    /// Cancels the questions still out, as the dashboard closes.
    func cancelQuestions() {
        let asking = state.withLock { state in
            defer { state.asking = [:] }
            return Array(state.asking.values)
        }
        for task in asking { task.cancel() }
    }

    /// The queues `backend` shows now, remembering new ones.
    private func queuesShown(on backend: Dashboard.Backend, serving workers: [WorkerPresence]) -> [QueueName]
    {
        let announced = workers.filter { serves(backend, $0.backend) }.flatMap(\.queues).compactMap {
            try? QueueName($0)
        }
        return state.withLock { state in
            for queue in announced
            where !state.queues[backend.index].contains(queue)
                && state.queues[backend.index].count < Self.rememberedQueueLimit
            {
                state.queues[backend.index].append(queue)
            }
            return state.queues[backend.index]
        }
    }

    /// Whether a worker that announces `workerBackend` works on `backend`: the same URL, or any
    /// URL when the dashboard shows one backend (the same server may be spelt another way:
    /// `localhost` for `127.0.0.1`, a container's host name).
    private func serves(_ backend: Dashboard.Backend, _ workerBackend: String) -> Bool {
        workerBackend == backend.inspector.endpoint || backends.count == 1
    }

    /// Works out each worker's rates per queue: its calls ended between its last two
    /// announcements. A worker seen for the first time has none yet, unless it started since
    /// the last sample: then it counts from zero at its start.
    private func recordRates(of workers: [WorkerPresence], at now: Date) {
        state.withLock { state in
            var latest: [String: WorkerRate] = [:]
            for worker in workers {
                var ended: [String: Int] = [:]
                for tally in worker.tallies { ended[tally.queue, default: 0] += tally.ended }
                let startedSince = state.lastSampleAt.map { worker.startedAt > $0 } ?? false
                var entry =
                    state.workerRates[worker.id]
                    ?? WorkerRate(
                        backend: worker.backend, ended: startedSince ? [:] : ended,
                        at: startedSince ? worker.startedAt : worker.announcedAt)
                let seconds = worker.announcedAt.timeIntervalSince(entry.at)
                if seconds > 0 {
                    entry.rates = [:]
                    for (queue, count) in ended {
                        let rate = Double(max(0, count - (entry.ended[queue] ?? 0))) / seconds
                        entry.rates[queue] = rate.isFinite ? rate : 0
                    }
                    entry.ended = ended
                    entry.at = worker.announcedAt
                }
                latest[worker.id] = entry
            }
            state.workerRates = latest
            state.lastSampleAt = now
        }
    }

    /// Adds the current throughput of `backend`'s queues (its workers' rates, summed) to their
    /// histories; returns the histories.
    private func recordThroughput(on backend: Dashboard.Backend, queues: [QueueName]) -> [QueueName: [Double]]
    {
        state.withLock { state in
            var rates: [String: Double] = [:]
            for worker in state.workerRates.values where serves(backend, worker.backend) {
                for (queue, rate) in worker.rates { rates[queue, default: 0] += rate }
            }
            var series: [QueueName: [Double]] = [:]
            for queue in queues {
                var history = state.throughput[backend.index][queue] ?? []
                history.append(rates[queue.rawValue] ?? 0)
                if history.count > Self.historyLength { history.removeFirst() }
                state.throughput[backend.index][queue] = history
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
