// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

#if canImport(Glibc)
    internal import Glibc
#endif

/// A pipe another thread writes to, to wake a thread blocked in `poll` (cancellation, close).
package final class WakePipe: Sendable {
    package let readEnd: Int32
    private let writeEnd: Int32

    /// A pipe for an object made once, when a connection opens; traps when the process has no
    /// descriptor left. Objects made per request use ``make()``.
    package convenience init() {
        guard let ends = Self.pipeEnds() else { preconditionFailure("pipe failed: errno \(errno)") }
        self.init(ends)
    }

    /// A pipe, or nil when the process has no descriptor left (`errno` says why).
    package static func make() -> WakePipe? {
        pipeEnds().map(WakePipe.init)
    }

    private init(_ ends: (read: Int32, write: Int32)) {
        readEnd = ends.read
        writeEnd = ends.write
    }

    private static func pipeEnds() -> (read: Int32, write: Int32)? {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return nil }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        return (ends[0], ends[1])
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Wakes the poller; safe from any thread.
    package func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe; returns whether it held a signal.
    @discardableResult
    package func drain() -> Bool {
        var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let size = MemoryLayout.size(ofValue: buffer)
        var signalled = false
        // A short read means the pipe is empty: no second system call to find that out.
        while true {
            let count = withUnsafeMutableBytes(of: &buffer) { read(readEnd, $0.baseAddress, size) }
            if count > 0 { signalled = true }
            if count < size { return signalled }
        }
    }
}
