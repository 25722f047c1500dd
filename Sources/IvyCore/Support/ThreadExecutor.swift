// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// A serial executor that runs its jobs on one dedicated OS thread.
///
/// Blocking C APIs (hiredis, rabbitmq-c, libcurl) must not run on Swift's cooperative pool, whose
/// few threads would stall. A connection actor returns this executor from `unownedExecutor`:
/// every one of its methods then runs on the connection's own thread, the C handle is only ever
/// touched there, and the async world simply awaits the actor.
///
/// ```swift
/// actor Connection {
///     private let executor = ThreadExecutor(name: "ivy-redis")
///     nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
///     deinit { executor.shutdown() }
/// }
/// ```
package final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    // Invariant: `jobs` and `isStopped` are only touched with `condition` locked.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0
    private var isStopped = false
    private var hasExited = false
    // Set once in `init`, before the thread starts; read-only afterwards.
    private var thread: Thread?

    /// Starts the thread. It keeps the executor alive until ``shutdown()`` and the queued jobs
    /// are drained, then exits.
    package init(name: String) {
        thread = DedicatedThread.start(name: name) { [self] in run() }
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        // A job that arrives after the thread drained and exited would never run: its task
        // would hang. Shut an executor down only when nothing can use it any more (deinit).
        precondition(!hasExited, "a job was enqueued on a ThreadExecutor after its shutdown")
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    package func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread finish the queued jobs and exit.
    package func shutdown() {
        condition.lock()
        isStopped = true
        condition.signal()
        condition.unlock()
    }

    /// Whether the calling code runs on this executor's thread.
    package var isCurrent: Bool { Thread.current === thread }

    private func run() {
        while let job = next() {
            job.runSynchronously(on: asUnownedSerialExecutor())
        }
    }

    private func next() -> UnownedJob? {
        condition.lock()
        defer { condition.unlock() }
        while head == jobs.count && !isStopped { condition.wait() }
        guard head < jobs.count else {
            hasExited = true
            return nil
        }
        let job = jobs[head]
        head += 1
        if head == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            head = 0
        }
        return job
    }
}
