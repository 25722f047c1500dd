// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Metrics written in the Prometheus text exposition format (version 0.0.4), family by family:
/// a family's `# HELP` and `# TYPE` lines, then its samples.
public struct PrometheusText: Sendable {
    /// A family's type.
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    /// The media type of the text, for a `Content-Type` header.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public private(set) var text = ""

    public init() {}

    /// Starts a family: every sample until the next family belongs to it.
    public mutating func family(_ name: String, _ kind: Kind, help: String) {
        text += "# HELP \(name) \(Self.escapedHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    /// One sample of a counter or a gauge.
    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: Double) {
        sample(name, Array(labels), value)
    }

    /// The samples of a histogram: a bucket per bound (cumulative, `le`), then `+Inf`, the sum
    /// and the count.
    public mutating func histogram(
        _ name: String, _ labels: KeyValuePairs<String, String>, _ histogram: MetricsHistogram
    ) {
        let labels = Array(labels)
        for (bound, count) in zip(histogram.bounds.map(Self.number) + ["+Inf"], histogram.cumulativeCounts) {
            sample(name + "_bucket", labels + [("le", bound)], Double(count))
        }
        sample(name + "_sum", labels, histogram.sum)
        sample(name + "_count", labels, Double(histogram.count))
    }

    private mutating func sample(_ name: String, _ labels: [(key: String, value: String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{"
            text += labels.map { "\($0.key)=\"\(Self.escapedLabel($0.value))\"" }.joined(separator: ",")
            text += "}"
        }
        text += " \(Self.number(value))\n"
    }

    /// A value as the format writes it: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// A label value: backslash, double quote and line feed escaped.
    static func escapedLabel(_ value: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    /// A help text: backslash and line feed escaped.
    static func escapedHelp(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
    }
}
