// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

package import Foundation

#if canImport(Glibc)
    internal import Glibc
#endif

/// Starts an OS thread that runs one closure and lets go of it when done.
///
/// Foundation on Linux never releases a thread's closure, so whatever the closure captures would
/// live forever; here the closure reaches `body` through a holder emptied when `body` returns.
package enum DedicatedThread {
    private final class Holder: @unchecked Sendable {
        // Invariant: read and cleared only by the started thread.
        var body: (@Sendable () -> Void)?
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// - Parameter name: Shown by debuggers and `top -H`; Linux keeps the first 15 bytes.
    @discardableResult
    package static func start(name: String, _ body: @escaping @Sendable () -> Void) -> Thread {
        let holder = Holder(body)
        let thread = Thread {
            // Named by the thread itself, at the kernel: a name set on the Thread object before
            // start() is ignored on Linux, and Foundation's own bookkeeping of it is unreliable.
            nameCurrentThread(name)
            holder.body?()
            holder.body = nil
        }
        thread.start()
        return thread
    }

    /// Sets the kernel's name of the calling thread (what `top -H` and debuggers show).
    private static func nameCurrentThread(_ name: String) {
        #if os(Linux)
            // pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module lacks; this file
            // is the same thing.
            let descriptor = open("/proc/thread-self/comm", O_WRONLY)
            guard descriptor >= 0 else { return }
            let bytes = Array(name.utf8.prefix(15))
            _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
        #else
            Thread.current.name = name
        #endif
    }
}
