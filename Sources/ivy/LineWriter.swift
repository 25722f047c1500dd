// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Dispatch
import IvyCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writes lines to a descriptor from a thread of its own: a slow reader (a pipe into a busy
/// script) blocks that thread, never the cooperative pool the worker's tasks run on.
///
/// `ivy worker --events` prints through it. Lines wait in memory up to `limit`; past it the
/// newest are dropped and counted, so a stalled reader cannot grow the worker without bound.
final class LineWriter: Sendable {
    private struct State {
        var lines: [String] = []
        var dropped = 0
        var isFinishing = false
    }

    private let descriptor: Int32
    private let limit: Int
    private let state = Mutex(State())
    private let available = DispatchSemaphore(value: 0)
    private let done = OneShot()

    /// - Parameter onBrokenPipe: Called once, on the writer's thread, when the reader has gone
    ///   (EPIPE); nothing more is written after.
    init(descriptor: Int32, limit: Int = 100_000, onBrokenPipe: @escaping @Sendable () -> Void) {
        self.descriptor = descriptor
        self.limit = limit
        DedicatedThread.start(name: "ivy-lines") { [self] in drain(onBrokenPipe: onBrokenPipe) }
    }

    /// Queues a line (a newline is added).
    func write(_ line: String) {
        let queued = state.withLock { state -> Bool in
            guard !state.isFinishing, state.lines.count < limit else {
                state.dropped += 1
                return false
            }
            state.lines.append(line)
            return true
        }
        if queued { available.signal() }
    }

    /// Writes what is queued, then stops; returns how many lines were dropped.
    func finish() async -> Int {
        state.withLock { $0.isFinishing = true }
        available.signal()
        await done.wait()
        return state.withLock { $0.dropped }
    }

    private func drain(onBrokenPipe: @Sendable () -> Void) {
        var isBroken = false
        while true {
            available.wait()
            let (lines, finishing) = state.withLock { state in
                defer { state.lines.removeAll(keepingCapacity: true) }
                return (state.lines, state.isFinishing)
            }
            if !isBroken, !lines.isEmpty {
                isBroken = !Self.write(lines.joined(separator: "\n") + "\n", to: descriptor)
                if isBroken { onBrokenPipe() }
            }
            if finishing && state.withLock({ $0.lines.isEmpty }) { break }
        }
        done.fire()
    }

    /// Writes all of `text`; false when the reader has gone.
    private static func write(_ text: String, to descriptor: Int32) -> Bool {
        var text = text
        return text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return false }
                offset += written
            }
            return true
        }
    }
}
