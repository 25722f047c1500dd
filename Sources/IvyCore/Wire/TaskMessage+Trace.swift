// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension TaskMessage {
    /// The `options` a client sends: `{}`, or the trace context as `traceparent` and `tracestate`
    /// (PROTOCOL.md §1).
    static func options(carrying trace: TraceContext?) -> [UInt8] {
        guard let trace else { return Array("{}".utf8) }
        var writer = JSONWriter(capacity: 80 + (trace.tracestate?.utf8.count ?? 0))
        writer.raw("{")
        writer.key("traceparent", first: true)
        writer.string(trace.traceparent)
        if let tracestate = trace.tracestate {
            writer.key("tracestate")
            writer.string(tracestate)
        }
        writer.raw("}")
        return writer.bytes
    }

    /// The trace context in `options`, if it holds a valid one; anything else there is ignored.
    var trace: TraceContext? {
        // `{}` is by far the most common: no parse.
        guard options.count > 2, let object = try? JSONObjectReader(options),
            let traceparent = try? object.string("traceparent")
        else { return nil }
        return TraceContext(traceparent: traceparent, tracestate: (try? object.string("tracestate")) ?? nil)
    }
}
