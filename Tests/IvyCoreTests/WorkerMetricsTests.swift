// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyExamples
import IvyTestSupport
import Testing

/// Counting a worker's events and writing them as Prometheus text (scripts/metrics-test.sh reads
/// a live worker's with Prometheus's own parser).
@Suite("Worker metrics")
struct WorkerMetricsTests {
    @Test func eventsAreCountedPerTaskAndQueue() throws {
        let metrics = WorkerMetrics()
        let queue = QueueName("q")
        // Due a minute ago (and in the future, as a producer whose clock runs ahead would say).
        let add = TaskEventContext(
            taskName: "t.add", taskID: "1", queue: queue, attempt: 1, dueAt: Date(timeIntervalSinceNow: -60))
        var ahead = add
        ahead.dueAt = Date(timeIntervalSinceNow: 60)
        for event in [
            IvyEvent(.started, task: add), IvyEvent(.succeeded, task: add, duration: .milliseconds(20)),
            IvyEvent(.started, task: add), IvyEvent(.retried, task: add, delay: .seconds(1), error: "E"),
            IvyEvent(.started, task: add), IvyEvent(.failed, task: ahead, error: "E"),
            IvyEvent(.deadLettered, queue: queue, messageID: "m", error: "not JSON"),
            IvyEvent(.scheduled, task: add), IvyEvent(.callerResumed, task: add, succeeded: true),
        ] {
            metrics.record(event)
        }
        let counts = try #require(metrics.snapshot()[WorkerMetrics.Series(task: "t.add", queue: "q")])
        let tally: [Int] = [
            counts.scheduled, counts.started, counts.succeeded, counts.retried, counts.failed,
            counts.deadLettered,
        ]
        #expect(
            tally == [1, 3, 1, 1, 1, 0],
            "a scheduled call counts (a periodic tick sent), a caller's result not")
        #expect(counts.runTime.count == 1 && abs(counts.runTime.sum - 0.02) < 1e-9)
        #expect(
            counts.runTime.cumulativeCounts.first == 0 && counts.runTime.cumulativeCounts[2] == 1,
            "in ≤ 0.025")
        #expect(metrics.snapshot()[WorkerMetrics.Series(task: "", queue: "q")]?.deadLettered == 1)
        // Calls that ended: the success a minute after it was due, the failure at once (never
        // below zero); a retry is not an end.
        #expect(counts.resultLatency.count == 2)
        #expect(counts.resultLatency.cumulativeCounts.first == 1, "the failure in the first bucket")
        #expect(counts.resultLatency.sum >= 60 && counts.resultLatency.sum < 300)
    }

    @Test func theTextFollowsTheExpositionFormat() throws {
        let metrics = WorkerMetrics()
        let queue = QueueName("q")
        let odd = TaskEventContext(taskName: "a\"b\\c\nd", taskID: "1", queue: queue, attempt: 1)
        metrics.record(IvyEvent(.started, task: odd))
        metrics.record(IvyEvent(.succeeded, task: odd, duration: .seconds(400)))
        var text = PrometheusText()
        metrics.write(to: &text)
        let lines = text.text.split(separator: "\n").map(String.init)
        #expect(lines.contains("# TYPE ivy_tasks_total counter"))
        #expect(
            lines.contains(#"ivy_tasks_started_total{task="a\"b\\c\nd",queue="q"} 1"#), "label values escaped"
        )
        #expect(lines.contains(#"ivy_task_run_seconds_bucket{task="a\"b\\c\nd",queue="q",le="300"} 0"#))
        #expect(lines.contains(#"ivy_task_run_seconds_bucket{task="a\"b\\c\nd",queue="q",le="+Inf"} 1"#))
        #expect(lines.contains(#"ivy_task_run_seconds_sum{task="a\"b\\c\nd",queue="q"} 400"#))
        #expect(lines.contains(#"ivy_tasks_total{task="a\"b\\c\nd",queue="q",outcome="dead_lettered"} 0"#))
        var histogram = MetricsHistogram(bounds: [1, 2])
        for value in [0.5, 1, 1.5, 3, .nan, .infinity] { histogram.observe(value) }
        #expect(histogram.cumulativeCounts == [2, 3, 4] && histogram.count == 4 && histogram.sum == 6)
    }

    /// A producer counts the calls it sends, the outcomes its callers get and how long they
    /// waited: here through a real worker on the memory backend.
    @Test func aClientCountsItsCallsOutcomesAndResultLatency() async throws {
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: "pm")
        let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: MemoryNotifier())
        let worker = try IvyWorker(
            registry: registry, connection: connection, options: WorkerOptions(logger: SilentLogger()))
        let serving = Task { try await worker.run() }
        let client = try await IvyClient(
            registry: registry, connection: connection, options: ClientOptions(logger: SilentLogger()))
        #expect(try await client.call(tasks.factorial, 5) == 120)
        // Awaited by two tasks: one caller resumed, counted once.
        let pending = try await client.delayedCall(tasks.factorial, 3)
        async let first = pending.value
        async let second = pending.value
        #expect(try await [first, second] == [6, 6])
        await #expect(throws: RemoteTaskError.self) { try await client.call(tasks.factorial, -1) }
        try await client.enqueue(tasks.echo, "not awaited")
        let snapshot = client.metrics.snapshot()
        let factorial = try #require(
            snapshot[WorkerMetrics.Series(task: "testpackage.factorial", queue: "pm")])
        let counts: [Int] = [
            factorial.scheduled, factorial.succeeded, factorial.failed, factorial.resultLatency.count,
        ]
        #expect(counts == [3, 2, 1, 3])
        #expect(snapshot[WorkerMetrics.Series(task: "testpackage.echo", queue: "pm")]?.scheduled == 1)
        let lines = client.prometheusText().split(separator: "\n").map(String.init)
        #expect(
            lines.contains(#"ivy_calls_total{task="testpackage.factorial",queue="pm",outcome="failed"} 1"#))
        #expect(lines.contains(#"ivy_call_result_seconds_count{task="testpackage.factorial",queue="pm"} 3"#))
        serving.cancel()
        try await serving.value
        await client.close()
        await worker.close()
        await connection.close()
    }
}
