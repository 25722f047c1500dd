// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension IvyWorker {
    /// This worker's metrics in the Prometheus text format (what `ivy worker --metrics`
    /// serves): its counts (``WorkerMetrics``), the messages it has in hand per queue
    /// (`ivy_tasks_in_flight`), and its queues' sizes by state (`ivy_queue_messages`), asked of
    /// the backend now where it can tell them (``InspectableQueueBackend``). A backend that
    /// counts one state reports every live message as `ready`; a size that cannot be had within
    /// 2 s is left out.
    public func prometheusText() async -> String {
        var text = PrometheusText()
        metrics.write(to: &text)
        let inFlight = self.inFlight
        text.family(
            "ivy_tasks_in_flight", .gauge,
            help: "Messages the worker has in hand: decoding, running or settling them.")
        for queue in queues {
            text.sample("ivy_tasks_in_flight", ["queue": queue.rawValue], Double(inFlight[queue] ?? 0))
        }
        guard let inspectable = backend as? any InspectableQueueBackend else { return text.text }
        let sizes = await inspectable.sizes(of: queues, within: .seconds(2))
        text.family(
            "ivy_queue_messages", .gauge,
            help:
                "Messages in the queue by state (ready, delayed, reserved, dead), as the broker counts them.")
        for (queue, size) in sizes {
            for (state, count) in [
                ("ready", size.ready), ("delayed", size.delayed), ("reserved", size.reserved),
                ("dead", size.dead),
            ] {
                text.sample("ivy_queue_messages", ["queue": queue.rawValue, "state": state], Double(count))
            }
        }
        return text.text
    }
}
