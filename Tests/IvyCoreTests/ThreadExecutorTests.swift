// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyTestSupport
import Testing

@testable import IvyCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The dedicated-thread serial executor that connection actors run on (STYLE.md rule 5).
struct ThreadExecutorTests {
    /// An actor pinned to a ``ThreadExecutor``, as a connection actor is.
    actor Pinned {
        let executor: ThreadExecutor
        private var counter = 0

        init(executor: ThreadExecutor) { self.executor = executor }

        nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

        func isOnExecutorThread() -> Bool { executor.isCurrent }

        func threadIdentity() -> ObjectIdentifier { ObjectIdentifier(Thread.current) }

        /// A read-modify-write that loses updates unless calls never overlap.
        func increment() -> Bool {
            let old = counter
            counter = old + 1
            return executor.isCurrent
        }

        var count: Int { counter }

        /// What one queued task saw.
        struct Run: Sendable, Equatable {
            var index: Int
            var order: Int
            var onThread: Bool
        }

        /// Starts `count` tasks isolated to this actor, whose first jobs go straight to the
        /// executor in creation order, and returns them without waiting; then, if asked, shuts
        /// the executor down behind them. Each task runs without suspending, so none needs the
        /// executor again after its first job.
        func startTasks(_ count: Int, thenShutDown: Bool = false) -> [Task<Run, Never>] {
            let tasks = (0..<count).map { index in
                Task {
                    self.counter += 1
                    return Run(index: index, order: self.counter, onThread: self.executor.isCurrent)
                }
            }
            if thenShutDown { executor.shutdown() }
            return tasks
        }

        /// The kernel's name for the calling thread, and whether it is the executor's thread.
        func threadName() -> (name: String, onExecutor: Bool) {
            let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            return (name.trimmingCharacters(in: .newlines), executor.isCurrent)
        }

        func arm(_ signal: ThreadExitSignal) { signal.armOnCurrentThread() }

        func awaitNonisolatedWork() async -> (before: Bool, after: Bool) {
            let before = executor.isCurrent
            _ = await Task.detached { 1 }.value
            return (before, executor.isCurrent)
        }
    }

    /// Reports when the thread that armed it exits, through a pthread key destructor: an event
    /// to await rather than a time to sleep.
    final class ThreadExitSignal: Sendable {
        let exited: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation

        init() { (exited, continuation) = AsyncStream.makeStream() }

        /// Arms the signal for the calling thread; call at most once per thread.
        func armOnCurrentThread() {
            let status = pthread_setspecific(Self.key, Unmanaged.passRetained(self).toOpaque())
            precondition(status == 0, "pthread_setspecific failed")
        }

        /// Waits until the armed thread has exited.
        func wait() async {
            for await _ in exited {}
        }

        private func fire() {
            continuation.yield()
            continuation.finish()
        }

        private static let key: pthread_key_t = {
            var key = pthread_key_t()
            let status = pthread_key_create(&key) { pointer in
                guard let pointer else { return }
                Unmanaged<ThreadExitSignal>.fromOpaque(pointer).takeRetainedValue().fire()
            }
            precondition(status == 0, "pthread_key_create failed")
            return key
        }()
    }

    @Test func everyActorMethodRunsOnTheExecutorThread() async throws {
        let executor = ThreadExecutor(name: "ivy-test")
        defer { executor.shutdown() }
        let actor = Pinned(executor: executor)

        #expect(await actor.isOnExecutorThread())
        let identity = await actor.threadIdentity()
        let identities = await withTaskGroup(of: ObjectIdentifier.self) { group in
            for _ in 0..<20 { group.addTask { await actor.threadIdentity() } }
            return await group.reduce(into: Set<ObjectIdentifier>()) { $0.insert($1) }
        }
        #expect(identities == [identity])
        #expect(await actor.isOnExecutorThread())
    }

    @Test func otherCodeDoesNotRunOnTheExecutorThread() async {
        let executor = ThreadExecutor(name: "ivy-test")
        defer { executor.shutdown() }
        let actor = Pinned(executor: executor)
        _ = await actor.isOnExecutorThread()

        #expect(!executor.isCurrent)
        #expect(await Task { executor.isCurrent }.value == false)
        #expect(await Task.detached { executor.isCurrent }.value == false)
        // Work the actor awaits elsewhere runs elsewhere, and the actor resumes on its thread.
        let (before, after) = await actor.awaitNonisolatedWork()
        #expect(before && after)
    }

    @Test func executorsHaveTheirOwnThreads() async {
        let first = ThreadExecutor(name: "ivy-test-1")
        let second = ThreadExecutor(name: "ivy-test-2")
        defer {
            first.shutdown()
            second.shutdown()
        }
        let a = Pinned(executor: first)
        let b = Pinned(executor: second)
        #expect(await a.threadIdentity() != b.threadIdentity())
        #expect(await a.isOnExecutorThread())
        #expect(await b.isOnExecutorThread())
    }

    @Test func callsFromManyTasksRunOneAtATime() async {
        let executor = ThreadExecutor(name: "ivy-test")
        defer { executor.shutdown() }
        let actor = Pinned(executor: executor)
        let allOnThread = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    var onThread = true
                    for _ in 0..<20 { onThread = await actor.increment() && onThread }
                    return onThread
                }
            }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(allOnThread)
        #expect(await actor.count == 1000)
    }

    @Test func jobsRunInTheOrderTheyWereEnqueued() async {
        let executor = ThreadExecutor(name: "ivy-test")
        defer { executor.shutdown() }
        let actor = Pinned(executor: executor)
        var runs: [Pinned.Run] = []
        for task in await actor.startTasks(1000) { runs.append(await task.value) }
        #expect(runs == (0..<1000).map { Pinned.Run(index: $0, order: $0 + 1, onThread: true) })
        #expect(await actor.count == 1000)
    }

    @Test func queuedJobsDrainAndTheThreadExitsAfterShutdown() async throws {
        let executor = ThreadExecutor(name: "ivy-test")
        let actor = Pinned(executor: executor)
        let signal = ThreadExitSignal()
        await actor.arm(signal)

        // shutdown() lands behind 100 queued jobs: all of them still run, in order, then the
        // thread exits. (Anything enqueued after that never runs, so nothing here touches the
        // actor again.)
        let tasks = await actor.startTasks(100, thenShutDown: true)
        let runs = try await withDeadline(.seconds(10)) {
            var runs: [Pinned.Run] = []
            for task in tasks { runs.append(await task.value) }
            return runs
        }
        #expect(runs == (0..<100).map { Pinned.Run(index: $0, order: $0 + 1, onThread: true) })
        try await withDeadline(.seconds(10)) { await signal.wait() }
    }

    @Test func idleExecutorExitsOnShutdownAndToleratesASecondCall() async throws {
        let executor = ThreadExecutor(name: "ivy-test")
        let signal = ThreadExitSignal()
        await Pinned(executor: executor).arm(signal)
        executor.shutdown()
        executor.shutdown()
        try await withDeadline(.seconds(10)) { await signal.wait() }
        #expect(!executor.isCurrent)
    }

    @Test func threadCarriesTheExecutorName() async {
        let executor = ThreadExecutor(name: "ivy-named")
        defer { executor.shutdown() }
        let (name, onExecutor) = await Pinned(executor: executor).threadName()
        #expect(onExecutor)
        #expect(name == "ivy-named")
    }
}
