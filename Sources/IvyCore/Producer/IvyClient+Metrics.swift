// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension IvyClient {
    /// This client's metrics in the Prometheus text format (``ProducerMetrics``): calls sent,
    /// outcomes and result latency as callers saw them, for a producer's own `/metrics`.
    public func prometheusText() -> String {
        var text = PrometheusText()
        metrics.write(to: &text)
        return text.text
    }
}
