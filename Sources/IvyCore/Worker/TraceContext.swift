// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A W3C Trace Context (`traceparent` and `tracestate`) that travels with a call, so that a
/// task's spans join the caller's trace (PROTOCOL.md §1, "options").
///
/// A client puts ``current`` into the message's `options` when it sends a call; a worker reads it
/// back into ``TaskContext/trace`` and makes it ``current`` while the task runs, so calls made
/// from inside a task carry it on. Bridge it to swift-distributed-tracing or OpenTelemetry by
/// setting ``current`` from your span around a call, and by starting a span from
/// ``TaskContext/trace`` in a ``TaskMiddleware``.
public struct TraceContext: Sendable, Hashable {
    /// `version-traceid-parentid-flags`, such as
    /// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
    public let traceparent: String
    /// Vendor-specific entries (`key=value,…`), if any.
    public let tracestate: String?

    /// Checks the two headers as W3C Trace Context level 1 defines them; nil if `traceparent`
    /// is not valid. An invalid `tracestate` is dropped, as the specification says. A later
    /// version's `traceparent` is kept as the version-00 header it starts with (the fields this
    /// version knows), so that what a message brings in cannot grow what calls carry on.
    public init?(traceparent: String, tracestate: String? = nil) {
        guard Self.isValid(traceparent: traceparent) else { return nil }
        self.traceparent =
            traceparent.utf8.count == 55 && traceparent.hasPrefix("00-")
            ? traceparent : "00" + String(decoding: traceparent.utf8.dropFirst(2).prefix(53), as: UTF8.self)
        self.tracestate = tracestate.flatMap { Self.isValid(tracestate: $0) ? $0 : nil }
    }

    /// The 32 hex digits naming the whole trace.
    public var traceID: Substring { traceparent.dropFirst(3).prefix(32) }

    /// The trace context calls from the current task carry; nil for none.
    @TaskLocal public static var current: TraceContext?

    static func isValid(traceparent: String) -> Bool {
        let bytes = Array(traceparent.utf8)
        // Later versions may append fields after a dash; version ff is forbidden.
        guard bytes.count == 55 || (bytes.count > 55 && bytes[55] == UInt8(ascii: "-")) else { return false }
        func isHex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
        }
        func isZero(_ range: Range<Int>) -> Bool { bytes[range].allSatisfy { $0 == 48 } }
        let dashes = [2, 35, 52].allSatisfy { bytes[$0] == UInt8(ascii: "-") }
        guard dashes, isHex(0..<2), isHex(3..<35), isHex(36..<52), isHex(53..<55) else { return false }
        let version = bytes[0..<2]
        guard version != [102, 102] else { return false }
        if version == [48, 48] && bytes.count != 55 { return false }
        return !isZero(3..<35) && !isZero(36..<52)
    }

    static func isValid(tracestate: String) -> Bool {
        (1...512).contains(tracestate.utf8.count) && tracestate.utf8.allSatisfy { (32...126).contains($0) }
    }
}
