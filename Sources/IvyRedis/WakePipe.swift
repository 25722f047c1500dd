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
        var buffer = [UInt8](repeating: 0, count: 64)
        var signalled = false
        while read(readEnd, &buffer, buffer.count) > 0 { signalled = true }
        return signalled
    }
}
