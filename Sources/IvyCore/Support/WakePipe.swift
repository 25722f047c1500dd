// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

#if canImport(Glibc)
    internal import Glibc
#endif

/// A pipe another thread writes to, to wake a thread blocked in `poll` (cancellation, close).
package final class WakePipe: Sendable {
    package let readEnd: Int32
    private let writeEnd: Int32

    package init() {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "pipe failed")
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        readEnd = ends[0]
        writeEnd = ends[1]
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
