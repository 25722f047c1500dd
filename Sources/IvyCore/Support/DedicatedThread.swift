// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

package import Foundation

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
            // A name set before start() is ignored on Linux.
            Thread.current.name = String(decoding: name.utf8.prefix(15), as: UTF8.self)
            holder.body?()
            holder.body = nil
        }
        thread.start()
        return thread
    }
}
