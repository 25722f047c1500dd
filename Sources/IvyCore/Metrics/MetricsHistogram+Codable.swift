// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A histogram as workers' announcements carry it (PROTOCOL.md §12): `bounds`, `counts` per
/// bucket (not cumulative, `+Inf` last), `sum`. Decoding checks what it reads, since anything
/// that can write to the notifier's store can write an announcement: a histogram that is not
/// one is refused rather than trusted.
extension MetricsHistogram: Codable {
    private enum CodingKeys: String, CodingKey {
        case bounds, counts, sum
    }

    /// The most observations a decoded bucket may claim: far past what a worker counts, small
    /// enough that sums over a thousand workers cannot overflow.
    static let decodedCountLimit = 1 << 40

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(bounds, forKey: .bounds)
        try container.encode(bucketCounts, forKey: .counts)
        try container.encode(sum, forKey: .sum)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let bounds = try container.decode([Double].self, forKey: .bounds)
        let counts = try container.decode([Int].self, forKey: .counts)
        let sum = try container.decode(Double.self, forKey: .sum)
        guard bounds.count <= 64, bounds.allSatisfy(\.isFinite),
            zip(bounds, bounds.dropFirst()).allSatisfy({ $0 < $1 }), counts.count == bounds.count + 1,
            counts.allSatisfy({ (0...Self.decodedCountLimit).contains($0) }), sum.isFinite
        else {
            throw DecodingError.dataCorruptedError(
                forKey: .counts, in: container, debugDescription: "not a histogram")
        }
        self.init(bounds: bounds)
        bucketCounts = counts
        self.sum = sum
        count = counts.reduce(0, +)
    }
}
