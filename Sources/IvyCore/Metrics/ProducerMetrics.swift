// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import Synchronization

/// What a producer's calls did, counted per task and queue (``IvyClient/metrics``): calls sent,
/// outcomes its callers got, and how long they waited for them. Counting costs one lock per
/// event; nothing is sent anywhere. ``IvyClient/prometheusText()`` writes them for Prometheus,
/// which a producer's own HTTP server (`IvyHTTP`) can serve, and ``snapshot()`` is there for a
/// bridge to swift-metrics.
public final class ProducerMetrics: Sendable {
    /// What one task's calls on one queue did since the client was made.
    public struct Counts: Sendable, Hashable {
        /// Calls the queue accepted, awaited or not (``IvyEvent/Kind/scheduled``).
        public var scheduled = 0
        /// Calls whose caller got a result.
        public var succeeded = 0
        /// Calls whose caller got an error: the task's, a timeout, a result that did not decode.
        public var failed = 0
        /// From when each awaited call was sent (or due, for one sent to run later) to when its
        /// caller got the outcome, in seconds: result latency as the caller sees it.
        public var resultLatency = MetricsHistogram(bounds: MetricsHistogram.latencyBounds)

        public init() {}
    }

    private let series = Mutex<[WorkerMetrics.Series: Counts]>([:])

    public init() {}

    /// Every task's counts so far.
    public func snapshot() -> [WorkerMetrics.Series: Counts] { series.withLock { $0 } }

    /// Counts what `event` says a producer did; events of other kinds change nothing.
    public func record(_ event: IvyEvent) {
        let key = WorkerMetrics.Series(task: event.task?.taskName ?? "", queue: event.queue?.rawValue ?? "")
        switch event.kind {
        case .scheduled: series.withLock { $0[key, default: Counts()].scheduled += 1 }
        case .callerResumed:
            let latency = event.task?.secondsSinceDue
            let succeeded = event.succeeded == true
            series.withLock { series in
                if succeeded {
                    series[key, default: Counts()].succeeded += 1
                } else {
                    series[key, default: Counts()].failed += 1
                }
                if let latency { series[key]?.resultLatency.observe(latency) }
            }
        default: break
        }
    }

    /// The counts as Prometheus families: `ivy_calls_scheduled_total`, `ivy_calls_total` (by
    /// `outcome`: succeeded, failed) and `ivy_call_result_seconds`.
    public func write(to text: inout PrometheusText) {
        let all = snapshot().sorted { ($0.key.queue, $0.key.task) < ($1.key.queue, $1.key.task) }
        text.family(
            "ivy_calls_scheduled_total", .counter, help: "Calls the queue accepted, by task and queue.")
        for (key, counts) in all {
            text.sample(
                "ivy_calls_scheduled_total", ["task": key.task, "queue": key.queue], Double(counts.scheduled))
        }
        text.family(
            "ivy_calls_total", .counter,
            help: "Calls whose caller got its outcome, by outcome: succeeded, failed.")
        for (key, counts) in all {
            for (outcome, count) in [("succeeded", counts.succeeded), ("failed", counts.failed)] {
                text.sample(
                    "ivy_calls_total", ["task": key.task, "queue": key.queue, "outcome": outcome],
                    Double(count))
            }
        }
        text.family(
            "ivy_call_result_seconds", .histogram,
            help: "From when a call was sent (or due) to when its caller got the outcome.")
        for (key, counts) in all {
            text.histogram(
                "ivy_call_result_seconds", ["task": key.task, "queue": key.queue], counts.resultLatency)
        }
    }
}
