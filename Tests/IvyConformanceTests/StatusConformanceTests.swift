// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Synchronization
import Testing

/// Call statuses and cancels (``IvyClient/status(of:)``, ``IvyClient/cancel(_:)``), on every
/// backend, with each backend's notifier as its status store.
///
/// Each state is looked at when the test knows the call is in it: a body that has started and
/// waits on a gate is running (the worker records `running` before the body starts), a call
/// with no worker is waiting, a retry due in a minute is retrying. No state is looked at by
/// time alone.
@Suite("Call statuses and cancels")
struct StatusConformanceTests {
    @Test(arguments: ConformanceBackend.withTransports)
    func aCallGoesFromWaitingThroughRunningAndARetryToSucceeded(_ kind: ConformanceBackend) async throws {
        let flaky = Flaky()
        try await Harness.run(kind, worker: nil) { h in
            let task = try TaskDefinition<Int, Int>(
                name: "conformance.flaky",
                options: TaskOptions(queue: h.queue, retry: .fixed(.milliseconds(200))))
            let pending = try await h.client.delayedCall(task, 21, timeout: .seconds(60))
            let waiting = try await h.client.status(of: pending.taskID)
            #expect(waiting.state == .waiting)
            #expect(waiting.taskName == "conformance.flaky")
            #expect(waiting.queue == h.queue.rawValue)
            #expect(waiting.attempt == 1)
            #expect(waiting.channel == h.client.notificationChannel.rawValue)

            let worker = try h.makeWorker(
                WorkerOptions(concurrency: 2, pollWait: .seconds(1), name: "status-worker"))
            let serving = Task { try await worker.run() }
            await flaky.started[0].wait()
            let running = try await h.client.status(of: pending.taskID)
            #expect(running.state == .running)
            #expect(running.attempt == 1)
            #expect(running.worker == "status-worker")
            flaky.release[0].open()
            await flaky.started[1].wait()
            let again = try await h.client.status(of: pending.taskID)
            #expect(again.state == .running)
            #expect(again.attempt == 2, "the retry is attempt 2")
            #expect(
                again.reason?.contains("Flaky: first attempt") == true, "the retry keeps the last failure")
            flaky.release[1].open()
            #expect(try await pending.value == 42)
            let done = try await h.client.status(of: pending.taskID)
            #expect(done.state == .succeeded, "the status is final before the caller hears of the result")
            #expect(done.result?.text == "42")
            #expect(done.attempt == 2)
            serving.cancel()
            try await serving.value
            await worker.close()
        } register: { registry, queue in
            try registry.register("conformance.flaky", queue: queue, retry: .fixed(.milliseconds(200))) {
                (value: Int) in
                let attempt = TaskContext.current?.attempt ?? 1
                try await flaky.run(attempt: attempt)
                return value * 2
            }
        }
    }

    /// A retry due in ten seconds is `retrying` with its time and last failure; cancelling it
    /// then ends its caller's wait with `Cancelled`, and when the retry comes, the worker
    /// dead-letters it as cancelled instead of running it.
    @Test(arguments: ConformanceBackend.withTransports)
    func aRetryingCallShowsItsNextAttemptAndCanBeCancelled(_ kind: ConformanceBackend) async throws {
        let runs = Mutex(0)
        try await Harness.run(kind) { h in
            let task = try TaskDefinition<Int, Int>(
                name: "conformance.later-again",
                options: TaskOptions(queue: h.queue, retry: .fixed(.seconds(10))))
            let before = Date()
            let pending = try await h.client.delayedCall(task, 1, timeout: .seconds(120))
            let retrying = try await withDeadline(.seconds(30), "the call to wait for its retry") {
                while true {
                    let status = try await h.client.status(of: pending.taskID)
                    if status.state != .waiting && status.state != .running { return status }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            // A machine that stalled ten seconds since the failure sees the retry run: the
            // checks of the cancel are then moot, not wrong.
            guard retrying.state == .retrying else { return }
            #expect(retrying.attempt == 1)
            #expect(retrying.reason == "Busy: try again later")
            let due = try #require(retrying.runAt)
            #expect(
                due.timeIntervalSince(before) >= 9.9, "the next attempt is due ten seconds after the failure")
            let cancelled = try await h.client.cancel(pending.taskID)
            guard cancelled.state == .cancelled else { return }
            let error = await #expect(throws: RemoteTaskError.self) { try await pending.value }
            #expect(error?.name == "Cancelled")
            try await Self.expectCancelledDeadLetter(h)
            #expect(runs.withLock { $0 } == 1, "the cancelled retry ran")
            #expect(try await h.client.status(of: pending.taskID).state == .cancelled)
        } register: { registry, queue in
            try registry.register("conformance.later-again", queue: queue, retry: .fixed(.seconds(10))) {
                (_: Int) -> Int in
                runs.withLock { $0 += 1 }
                throw TaskFailure("Busy", "try again later")
            }
        }
    }

    /// Cancelled while it waits: the caller hears at once, and the worker that then receives the
    /// message dead-letters it as cancelled without running it.
    @Test(arguments: ConformanceBackend.withTransports)
    func aCallCancelledBeforeItStartsNeverRuns(_ kind: ConformanceBackend) async throws {
        let runs = Mutex(0)
        try await Harness.run(kind, worker: nil) { h in
            let task = try TaskDefinition<Int, Int>(
                name: "conformance.counted", options: TaskOptions(queue: h.queue))
            let pending = try await h.client.delayedCall(task, 1, timeout: .seconds(60))
            let cancelled = try await h.client.cancel(pending.taskID)
            #expect(cancelled.state == .cancelled)
            #expect(cancelled.reason?.hasPrefix("Cancelled") == true)
            let error = await #expect(throws: RemoteTaskError.self) { try await pending.value }
            #expect(error?.name == "Cancelled")
            // A later call shows when the worker has got past the cancelled one (FIFO is not
            // promised everywhere, so the dead letter is awaited for itself).
            let worker = try h.makeWorker(WorkerOptions(concurrency: 2, pollWait: .seconds(1)))
            let serving = Task { try await worker.run() }
            try await Self.expectCancelledDeadLetter(h)
            #expect(runs.withLock { $0 } == 0, "a cancelled call ran")
            #expect(try await h.client.status(of: pending.taskID).state == .cancelled)
            #expect(try await h.client.call(task, 2, timeout: .seconds(30)) == 2)
            #expect(runs.withLock { $0 } == 1)
            serving.cancel()
            try await serving.value
            await worker.close()
        } register: { registry, queue in
            try registry.register("conformance.counted", queue: queue) { (value: Int) in
                runs.withLock { $0 += 1 }
                return value
            }
        }
    }

    /// A running call on a worker that allows it is cancelled through Swift task cancellation;
    /// on one that does not, it runs on, and if it then fails it is not retried.
    @Test(arguments: ConformanceBackend.withTransports)
    func aRunningCallIsCancelledOnlyWhereItsWorkerAllows(_ kind: ConformanceBackend) async throws {
        let started = Gate()
        let finish = Gate()
        let sawCancellation = Mutex(false)
        try await Harness.run(kind, worker: nil) { h in
            let sleeper = try TaskDefinition<Int, Int>(
                name: "conformance.sleeper", options: TaskOptions(queue: h.queue))
            let stubborn = try TaskDefinition<Int, Int>(
                name: "conformance.stubborn",
                options: TaskOptions(queue: h.queue, retry: .fixed(.milliseconds(10))))

            let allowing = try h.makeWorker(
                WorkerOptions(concurrency: 2, pollWait: .seconds(1), allowCancelRunning: true))
            var serving = Task { try await allowing.run() }
            let pending = try await h.client.delayedCall(sleeper, 1, timeout: .seconds(60))
            await started.wait()
            let asked = try await h.client.cancel(pending.taskID)
            #expect(asked.state == .running)
            #expect(asked.cancelRequested)
            let error = await #expect(throws: RemoteTaskError.self) { try await pending.value }
            #expect(error?.name == "Cancelled")
            #expect(sawCancellation.withLock { $0 }, "the body did not see cancellation")
            #expect(try await h.client.status(of: pending.taskID).state == .cancelled)
            serving.cancel()
            try await serving.value
            await allowing.close()

            let refusing = try h.makeWorker(WorkerOptions(concurrency: 2, pollWait: .seconds(1)))
            serving = Task { try await refusing.run() }
            let second = try await h.client.delayedCall(stubborn, 2, timeout: .seconds(60))
            let status = try await withDeadline(.seconds(30), "the stubborn call to run") {
                while true {
                    let status = try await h.client.status(of: second.taskID)
                    if status.state == .running { return status }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(status.attempt == 1)
            let marked = try await h.client.cancel(second.taskID)
            #expect(marked.state == .running && marked.cancelRequested)
            finish.open()
            let notRetried = await #expect(throws: RemoteTaskError.self) { try await second.value }
            #expect(notRetried?.name == "Cancelled")
            #expect(notRetried?.attempt == 1, "a call whose cancel was asked was retried")
            #expect(try await h.client.status(of: second.taskID).state == .cancelled)
            serving.cancel()
            try await serving.value
            await refusing.close()
        } register: { registry, queue in
            try registry.register("conformance.sleeper", queue: queue) { (value: Int) in
                started.open()
                do { try await Task.sleep(for: .seconds(3_600)) } catch {
                    sawCancellation.withLock { $0 = true }
                    throw error
                }
                return value
            }
            try registry.register("conformance.stubborn", queue: queue, retry: .fixed(.milliseconds(10))) {
                (_: Int) -> Int in
                await finish.wait()
                throw TaskFailure("Stubborn", "fails after a cancel was asked")
            }
        }
    }

    /// Failed, dead-lettered (its caller's deadline had passed), unknown, and a node-ivy
    /// message (no id), which goes by its broker id.
    @Test(arguments: ConformanceBackend.withTransports)
    func failedDeadLetteredUnknownAndNodeIvyStatuses(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let failing = try TaskDefinition<Int, Int>(
                name: "conformance.refuses", options: TaskOptions(queue: h.queue))
            let pending = try await h.client.delayedCall(failing, 1, timeout: .seconds(30))
            await #expect(throws: RemoteTaskError.self) { try await pending.value }
            let failed = try await h.client.status(of: pending.taskID)
            #expect(failed.state == .failed)
            #expect(failed.reason == "Refused: not today")

            let expired = TaskMessage(
                name: "conformance.refuses", args: Array("[1]".utf8), id: "expired-\(h.queue)",
                deadline: Date().addingTimeInterval(-60))
            _ = try await h.backend.send(expired.encoded(), to: h.queue)
            let dead = try await withDeadline(.seconds(30), "the expired call's status") {
                while true {
                    let status = try await h.client.status(of: "expired-\(h.queue)")
                    if status.state != .unknown { return status }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(dead.state == .deadLettered)
            #expect(dead.reason?.contains("deadline") == true, "reason: \(dead.reason ?? "none")")

            #expect(try await h.client.status(of: "never-sent-\(h.queue)").state == .unknown)

            let brokerID = try await h.sendRaw(#"{"name":"testpackage.factorial","options":{},"args":[5]}"#)
            let node = try await withDeadline(.seconds(30), "the node-ivy call's status") {
                while true {
                    let status = try await h.client.status(of: brokerID)
                    if status.state.isFinal { return status }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(node.state == .succeeded)
            #expect(node.result?.text == "120")
        } register: { registry, queue in
            try registry.register("conformance.refuses", queue: queue) { (_: Int) -> Int in
                throw TaskFailure("Refused", "not today", retryable: false)
            }
        }
    }

    /// Waits for the harness queue's first dead letter and checks it says the call was cancelled.
    private static func expectCancelledDeadLetter(_ h: Harness) async throws {
        let dead = try await withDeadline(.seconds(60), "the cancelled call's dead letter") {
            while true {
                if let letter = try await h.deadLetters().first { return letter }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(dead.reason.hasPrefix("Cancelled"), "reason: \(dead.reason)")
    }

    @Test func statusesCanBeTurnedOff() async throws {
        let connection = IvyConnection(
            backend: MemoryQueueBackend(), notifier: MemoryNotifier(statusRetention: nil))
        let registry = TaskRegistry()
        let task = try registry.register("conformance.plain", queue: "off") { (value: Int) in value }
        let client = try await IvyClient(registry: registry, connection: connection)
        let worker = try IvyWorker(
            registry: registry, connection: connection, options: WorkerOptions(logger: SilentLogger()))
        let serving = Task { try await worker.run() }
        #expect(try await client.call(task, 3, timeout: .seconds(30)) == 3)
        let off = await #expect(throws: IvyError.self) { _ = try await client.status(of: "anything") }
        #expect(off?.code == .unsupportedBackend)
        let noCancel = await #expect(throws: IvyError.self) { _ = try await client.cancel("anything") }
        #expect(noCancel?.code == .unsupportedBackend)
        serving.cancel()
        try await serving.value
        await client.close()
        await worker.close()
        await connection.close()
    }

    @Test func aStatusIsForgottenAfterItsRetention() async throws {
        let store = MemoryNotifier(statusRetention: .seconds(3))
        #expect(try await store.record(TaskStatus(id: "brief", state: .waiting, taskName: "t.t")) == .waiting)
        #expect(try store.status(of: "brief").state == .waiting)
        // A lower bound: the status expired 3 s after it was written, whatever the load.
        try await Task.sleep(for: .milliseconds(3_100))
        #expect(try store.status(of: "brief").state == .unknown)
    }
}

/// A task body that fails its first attempt and succeeds its second, each waiting on a gate
/// after saying it started.
private final class Flaky: Sendable {
    let started = [Gate(), Gate()]
    let release = [Gate(), Gate()]

    func run(attempt: Int) async throws {
        let index = min(attempt, 2) - 1
        started[index].open()
        await release[index].wait()
        if attempt == 1 { throw TaskFailure("Flaky", "first attempt") }
    }
}
