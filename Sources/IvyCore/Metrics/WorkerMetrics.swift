// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import Synchronization

/// What a worker did, counted per task and queue: the figures of its `/metrics` endpoint
/// (``write(to:)``), and of ``snapshot()`` for code in the same process (a middleware, a bridge
/// to swift-metrics). Counting costs one lock per event; nothing is sent anywhere.
public final class WorkerMetrics: Sendable {
    /// The task label of calls of tasks the worker does not have.
    public static let unknownTask = "(unknown)"

    /// One task on one queue; `task` is empty for a message dead-lettered without running
    /// (unreadable, or past its deadline), and ``WorkerMetrics/unknownTask`` for a task the
    /// worker does not have.
    public struct Series: Sendable, Hashable {
        public var task: String
        public var queue: String

        public init(task: String, queue: String) {
            self.task = task
            self.queue = queue
        }
    }

    /// What one task did on one queue since the worker started.
    public struct Counts: Sendable, Hashable {
        /// Calls of a periodic task this worker sent as its leader
        /// (``TaskRegistry/schedule(_:cron:timeZone:_:)``).
        public var scheduled = 0
        /// Attempts started.
        public var started = 0
        /// Attempts that returned.
        public var succeeded = 0
        /// Attempts that failed and will be made again.
        public var retried = 0
        /// Calls that failed for good, cancelled ones included (their messages are in the dead
        /// letter).
        public var failed = 0
        /// Messages dead-lettered without running: unreadable, or past their deadline.
        public var deadLettered = 0
        /// How long the attempts that returned ran, in seconds.
        public var runTime = MetricsHistogram()
        /// From when each call that ended (succeeded, or failed for good) was sent, or due, to
        /// when the worker had its outcome, in seconds: the wait in the queue, retries and the
        /// run. Across machines it is only as good as their clocks' agreement.
        public var resultLatency = MetricsHistogram(bounds: MetricsHistogram.latencyBounds)

        public init() {}
    }

    private let series = Mutex<[Series: Counts]>([:])

    public init() {}

    /// Every task's counts so far.
    public func snapshot() -> [Series: Counts] { series.withLock { $0 } }

    /// Counts what `event` says a worker did; events of other kinds change nothing.
    public func record(_ event: IvyEvent) {
        let key = Series(task: event.task?.taskName ?? "", queue: event.queue?.rawValue ?? "")
        switch event.kind {
        case .scheduled: series.withLock { $0[key, default: Counts()].scheduled += 1 }
        case .started: series.withLock { $0[key, default: Counts()].started += 1 }
        case .succeeded:
            let seconds = event.duration?.inSeconds
            let latency = event.task?.secondsSinceDue
            series.withLock { series in
                series[key, default: Counts()].succeeded += 1
                if let seconds { series[key]?.runTime.observe(seconds) }
                if let latency { series[key]?.resultLatency.observe(latency) }
            }
        case .retried: series.withLock { $0[key, default: Counts()].retried += 1 }
        case .failed:
            let latency = event.task?.secondsSinceDue
            series.withLock { series in
                series[key, default: Counts()].failed += 1
                if let latency { series[key]?.resultLatency.observe(latency) }
            }
        case .deadLettered: series.withLock { $0[key, default: Counts()].deadLettered += 1 }
        default: break
        }
    }

    /// The counts as Prometheus families: `ivy_periodic_calls_sent_total`,
    /// `ivy_tasks_started_total`, `ivy_tasks_total` (by
    /// `outcome`: succeeded, retried, failed, dead_lettered), `ivy_task_run_seconds` and
    /// `ivy_task_result_latency_seconds`.
    public func write(to text: inout PrometheusText) {
        let all = snapshot().sorted { ($0.key.queue, $0.key.task) < ($1.key.queue, $1.key.task) }
        // Not `ivy_calls_scheduled_total`, a producer's (``ProducerMetrics``): a process that is
        // both serves both.
        text.family(
            "ivy_periodic_calls_sent_total", .counter,
            help: "Calls of periodic tasks this worker sent as their leader, by task and queue.")
        for (key, counts) in all where counts.scheduled > 0 {
            text.sample(
                "ivy_periodic_calls_sent_total", ["task": key.task, "queue": key.queue],
                Double(counts.scheduled))
        }
        text.family("ivy_tasks_started_total", .counter, help: "Attempts started, by task and queue.")
        for (key, counts) in all {
            text.sample(
                "ivy_tasks_started_total", ["task": key.task, "queue": key.queue], Double(counts.started))
        }
        text.family(
            "ivy_tasks_total", .counter,
            help: "Attempts and messages that ended, by outcome: succeeded, retried, failed (for good), "
                + "dead_lettered (without running).")
        for (key, counts) in all {
            for (outcome, count) in [
                ("succeeded", counts.succeeded), ("retried", counts.retried), ("failed", counts.failed),
                ("dead_lettered", counts.deadLettered),
            ] {
                text.sample(
                    "ivy_tasks_total", ["task": key.task, "queue": key.queue, "outcome": outcome],
                    Double(count))
            }
        }
        text.family("ivy_task_run_seconds", .histogram, help: "How long attempts that returned ran.")
        for (key, counts) in all where !key.task.isEmpty {
            text.histogram("ivy_task_run_seconds", ["task": key.task, "queue": key.queue], counts.runTime)
        }
        text.family(
            "ivy_task_result_latency_seconds", .histogram,
            help: "From when a call was sent (or due) to its outcome at the worker, for calls that ended.")
        for (key, counts) in all where !key.task.isEmpty {
            text.histogram(
                "ivy_task_result_latency_seconds", ["task": key.task, "queue": key.queue],
                counts.resultLatency)
        }
    }
}
