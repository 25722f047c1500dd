// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Observations counted into buckets by upper bound, as Prometheus histograms are.
public struct MetricsHistogram: Sendable, Hashable {
    /// The buckets' upper bounds, in seconds, ascending; a last bucket, `+Inf`, takes the rest.
    public let bounds: [Double]
    /// How many observations fell in each bucket (not cumulative), the `+Inf` one last.
    public internal(set) var bucketCounts: [Int]
    /// The sum of every observation.
    public internal(set) var sum: Double = 0
    /// How many observations there were.
    public internal(set) var count: Int = 0

    /// The bounds Ivy uses for run times: 5 ms to 5 minutes.
    public static let runTimeBounds: [Double] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    ]

    /// The bounds Ivy uses for result latency: 1 ms to an hour.
    public static let latencyBounds: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600,
    ]

    public init(bounds: [Double] = runTimeBounds) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bounds must ascend")
        self.bounds = bounds
        bucketCounts = Array(repeating: 0, count: bounds.count + 1)
    }

    public mutating func observe(_ value: Double) {
        guard value.isFinite else { return }
        var bucket = bounds.count
        for (index, bound) in bounds.enumerated() where value <= bound {
            bucket = index
            break
        }
        bucketCounts[bucket] += 1
        sum += value
        count += 1
    }

    /// The counts as Prometheus states them: per bound, the observations at or below it; the
    /// last is every observation (`+Inf`).
    public var cumulativeCounts: [Int] {
        var total = 0
        return bucketCounts.map { count in
            total += count
            return total
        }
    }
}
