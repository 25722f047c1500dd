// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

/// The dashboard's `/metrics`: one scrape for a whole deployment, from its latest sample. Queue
/// sizes by backend, the workers alive, and each live worker's counts, run times and result
/// latency as it last announced them, labelled by worker (a worker that stops takes its series
/// with it, so counters never go down). The names differ from a worker's own (`ivy_worker_…`),
/// so that a Prometheus scraping both does not add them up twice.
enum DashboardMetrics {
    static func text(sampler: DashboardSampler) -> String {
        var text = PrometheusText()
        text.family(
            "ivy_queue_messages", .gauge,
            help:
                "Messages in the queue by state (ready, delayed, reserved, dead), as the broker counts them.")
        for report in sampler.reports {
            for queue in report.queues {
                for (state, count) in [
                    ("ready", queue.ready), ("delayed", queue.delayed), ("reserved", queue.reserved),
                    ("dead", queue.dead),
                ] {
                    guard let count else { continue }
                    text.sample(
                        "ivy_queue_messages",
                        ["backend": report.backend.endpoint, "queue": queue.name, "state": state],
                        Double(count))
                }
            }
        }
        let workers = sampler.workers.sorted { $0.id < $1.id }
        text.family("ivy_workers", .gauge, help: "Workers alive (announced within their lifetime).")
        text.sample("ivy_workers", [:], Double(workers.count))
        text.family("ivy_worker_tasks_in_flight", .gauge, help: "Messages each worker has in hand.")
        for worker in workers {
            text.sample("ivy_worker_tasks_in_flight", ["worker": worker.id], Double(worker.running))
        }
        for (name, help, count) in [
            (
                "ivy_worker_periodic_calls_sent_total",
                "Calls of periodic tasks each live worker sent as their leader, by task and queue.",
                \WorkerPresence.Tally.scheduled
            ),
            (
                "ivy_worker_tasks_started_total", "Attempts each live worker started, by task and queue.",
                \.started
            ),
        ] {
            text.family(name, .counter, help: help)
            for worker in workers {
                // A task no worker leads has no periodic series.
                for tally in worker.tallies where count != \.scheduled || tally.scheduled > 0 {
                    text.sample(
                        name, ["worker": worker.id, "task": tally.task, "queue": tally.queue],
                        Double(tally[keyPath: count]))
                }
            }
        }
        text.family(
            "ivy_worker_tasks_total", .counter,
            help: "Attempts and messages each live worker ended, by task, queue and outcome.")
        for worker in workers {
            for tally in worker.tallies {
                for (outcome, count) in [
                    ("succeeded", tally.succeeded), ("retried", tally.retried), ("failed", tally.failed),
                    ("dead_lettered", tally.deadLettered),
                ] {
                    text.sample(
                        "ivy_worker_tasks_total",
                        ["worker": worker.id, "task": tally.task, "queue": tally.queue, "outcome": outcome],
                        Double(count))
                }
            }
        }
        for (name, help, histogram) in [
            (
                "ivy_worker_task_run_seconds", "How long each live worker's attempts that returned ran.",
                \WorkerPresence.Tally.runTime
            ),
            (
                "ivy_worker_task_result_latency_seconds",
                "From when a call was sent (or due) to its outcome at each live worker.",
                \WorkerPresence.Tally.resultLatency
            ),
        ] {
            text.family(name, .histogram, help: help)
            for worker in workers {
                for tally in worker.tallies where !tally.task.isEmpty {
                    guard let values = tally[keyPath: histogram] else { continue }
                    text.histogram(
                        name, ["worker": worker.id, "task": tally.task, "queue": tally.queue], values)
                }
            }
        }
        return text.text
    }
}
