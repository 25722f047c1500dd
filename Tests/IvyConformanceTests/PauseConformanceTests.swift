// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

/// Pausing and resuming queues (``PausableQueueBackend``), on every backend: the state the broker
/// holds, and a worker that honours it.
@Suite("Pausing queues")
struct PauseConformanceTests {
    @Test(arguments: ConformanceBackend.all)
    func thePausedStateIsHeldByTheBrokerForEveryConnection(_ kind: ConformanceBackend) async throws {
        let (first, firstNotifier) = try await kind.open()
        // A broker's state is seen through another connection too; the memory backend's lives
        // in its instance, so it is its own second view.
        var second: (backend: any InspectableQueueBackend, notifier: any Notifier)?
        do {
            if kind.processURL != nil { second = try await kind.open() }
            let pausing = try #require(first as? any PausableQueueBackend, "\(kind.name) cannot pause queues")
            let watching = try #require(
                (second?.backend ?? first) as? any PausableQueueBackend, "\(kind.name) cannot pause queues")
            try await checkPauseState(pausing, watching, first)
        } catch {
            await close(first, firstNotifier, second)
            throw error
        }
        await close(first, firstNotifier, second)
    }

    private func checkPauseState(
        _ pausing: any PausableQueueBackend, _ watching: any PausableQueueBackend,
        _ inspecting: any InspectableQueueBackend
    ) async throws {
        let queue = freshQueue("pause")
        let other = freshQueue("pause")
        #expect(try await watching.isPaused(queue) == false, "a queue nobody paused")
        _ = try await inspecting.send(Array("kept".utf8), to: queue)
        try await pausing.pause(queue)
        try await pausing.pause(queue)
        #expect(try await watching.isPaused(queue))
        #expect(try await pausing.isPaused(queue))
        #expect(try await watching.isPaused(other) == false, "pausing one queue paused another")
        #expect(try await inspecting.size(of: queue).live == 1, "pausing touched the queue's messages")
        try await watching.resume(queue)
        #expect(try await pausing.isPaused(queue) == false)
        #expect(try await watching.isPaused(queue) == false)
        try await watching.resume(queue)
        #expect(try await pausing.isPaused(queue) == false, "resuming twice paused it again")
        #expect(try await inspecting.size(of: queue).live == 1)
        #expect(try await inspecting.purge(queue) == 1)
    }

    private func close(
        _ backend: any InspectableQueueBackend, _ notifier: any Notifier,
        _ second: (backend: any InspectableQueueBackend, notifier: any Notifier)?
    ) async {
        await backend.close()
        await notifier.close()
        await second?.backend.close()
        await second?.notifier.close()
    }

    /// A worker serving two queues, one of them paused while it runs: the paused queue's task
    /// waits (while a task of the other queue, sent after it, runs and finishes on the same
    /// worker), and runs once the queue is resumed.
    @Test(arguments: ConformanceBackend.all)
    func aWorkerTakesNothingFromAPausedQueueUntilItIsResumed(_ kind: ConformanceBackend) async throws {
        let runs = ConcurrencyProbe()
        let control = freshQueue("control")
        try await Harness.run(kind, worker: nil, resultTimeout: .seconds(60)) { h in
            let pausable = try #require(
                h.backend as? any PausableQueueBackend, "\(kind.name) cannot pause queues")
            let logger = RecordingLogger()
            let worker = try pauseWatchingWorker(
                h, queues: [h.queue, control], concurrency: 4, checkEvery: .milliseconds(100), logger: logger)
            let serving = Task { try await worker.run() }
            do {
                try await pausedQueue(h, pausable, logger: logger, runs: runs, control: control)
            } catch {
                serving.cancel()
                _ = try? await serving.value
                await worker.close()
                throw error
            }
            serving.cancel()
            try await withDeadline(.seconds(30), "the worker to stop") { try await serving.value }
            await worker.close()
        } register: { registry, queue in
            try registry.register("conformance.counted", queue: queue) { (value: Int) in
                runs.enter()
                runs.leave()
                return value
            }
            try registry.register("conformance.control", queue: control) { (value: Int) in value }
        }
    }

    private func pausedQueue(
        _ h: Harness, _ pausable: any PausableQueueBackend, logger: RecordingLogger, runs: ConcurrencyProbe,
        control: QueueName
    ) async throws {
        let counted = try TaskDefinition<Int, Int>(
            name: "conformance.counted", options: TaskOptions(queue: h.queue))
        let controlTask = try TaskDefinition<Int, Int>(
            name: "conformance.control", options: TaskOptions(queue: control))
        #expect(try await h.client.call(counted, 1) == 1, "the queue is served before the pause")

        try await pausable.pause(h.queue)
        // The worker says when it has seen the pause: from then on it reserves nothing there.
        try await withDeadline(.seconds(30), "the worker to see the pause") {
            await logger.waitFor(
                "queue paused; reserving nothing from it until it is resumed queue=\(h.queue)")
        }
        let waiting = try await h.client.delayedCall(counted, 2)
        // Sent after the paused queue's task, to the same worker: it runs, the other does not.
        #expect(try await h.client.call(controlTask, 3) == 3)
        #expect(runs.total == 1, "a task of the paused queue ran")
        #expect(
            try await h.size()
                == h.backend.comparable(QueueSize(ready: 1, delayed: 0, reserved: 0, dead: 0)),
            "a message of the paused queue was reserved")
        #expect(
            logger.count(
                containing: "queue paused; reserving nothing from it until it is resumed queue=\(control)")
                == 0)

        try await pausable.resume(h.queue)
        #expect(try await waiting.value == 2, "the paused task runs once the queue is resumed")
        #expect(runs.total == 2)
        #expect(logger.count(containing: "queue resumed queue=\(h.queue)") == 1)
    }

    /// Messages sent to a paused queue stay ready for everyone while a worker serves it: another
    /// connection counts them ready (its purge and peek would find them), and none waits hidden
    /// in the worker's consumer. They run once the queue is resumed.
    @Test(arguments: ConformanceBackend.all)
    func aPausedQueuesMessagesStayReadyForOtherConnectionsWhileAWorkerServesIt(_ kind: ConformanceBackend)
        async throws
    {
        let control = freshQueue("control")
        try await Harness.run(kind, worker: nil, resultTimeout: .seconds(60)) { h in
            // The memory backend's state lives in its instance, which is its own second view.
            let other = kind.processURL == nil ? nil : try await kind.open()
            let logger = RecordingLogger()
            let worker = try pauseWatchingWorker(
                h, queues: [h.queue, control], concurrency: 8, checkEvery: .milliseconds(100), logger: logger)
            let serving = Task { try await worker.run() }
            do {
                try await pausedMessagesStayReady(
                    h, seenBy: other?.backend ?? h.backend, logger: logger, control: control)
            } catch {
                serving.cancel()
                _ = try? await serving.value
                await worker.close()
                await other?.backend.close()
                await other?.notifier.close()
                throw error
            }
            serving.cancel()
            try await withDeadline(.seconds(30), "the worker to stop") { try await serving.value }
            await worker.close()
            await other?.backend.close()
            await other?.notifier.close()
        } register: { registry, queue in
            try registry.register("conformance.paused", queue: queue) { (value: Int) in value }
            try registry.register("conformance.control", queue: control) { (value: Int) in value }
        }
    }

    private func pausedMessagesStayReady(
        _ h: Harness, seenBy other: any InspectableQueueBackend, logger: RecordingLogger, control: QueueName
    ) async throws {
        let paused = try TaskDefinition<Int, Int>(
            name: "conformance.paused", options: TaskOptions(queue: h.queue))
        let controlTask = try TaskDefinition<Int, Int>(
            name: "conformance.control", options: TaskOptions(queue: control))
        // Served before the pause, so that the worker consumes the queue when it is paused.
        #expect(try await h.client.call(paused, 1) == 1)
        let pausable = try #require(h.backend as? any PausableQueueBackend, "cannot pause queues")
        try await pausable.pause(h.queue)
        try await withDeadline(.seconds(30), "the worker to see the pause") {
            await logger.waitFor(
                "queue paused; reserving nothing from it until it is resumed queue=\(h.queue)")
        }
        var waiting: [PendingResult<Int>] = []
        for value in 2...4 { waiting.append(try await h.client.delayedCall(paused, value)) }
        // The worker is still taking messages (another queue's, sent after these) meanwhile.
        #expect(try await h.client.call(controlTask, 5) == 5)
        #expect(
            try await other.size(of: h.queue)
                == other.comparable(QueueSize(ready: 3, delayed: 0, reserved: 0, dead: 0)),
            "messages of the paused queue were hidden from another connection")

        try await pausable.resume(h.queue)
        for (task, value) in zip(waiting, 2...4) { #expect(try await task.value == value) }
    }

    /// A worker waiting on a paused queue stops at once, without waiting for its next check.
    @Test(arguments: ConformanceBackend.all)
    func aWorkerWaitingOnAPausedQueueStopsPromptly(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, worker: nil) { h in
            let (pausable, worker, serving) = try await startOnPausedQueue(
                h, kind, checkEvery: .seconds(3_600))
            // Its next check is an hour away: only a wait that cancellation ends lets it stop.
            worker.stop()
            try await withDeadline(.seconds(30), "the paused worker to stop") { try await serving.value }
            await worker.close()
            try await pausable.resume(h.queue)
        }
    }

    /// A worker serving a paused queue whose backend is closed under it stops, as one serving a
    /// queue that is not paused does: its checks fail, and it reserves to hear why.
    @Test(arguments: ConformanceBackend.all)
    func aWorkerServingAPausedQueueStopsWhenItsBackendIsClosed(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, worker: nil) { h in
            let (_, worker, serving) = try await startOnPausedQueue(h, kind, checkEvery: .milliseconds(100))
            await h.backend.close()
            let outcome = try await withDeadline(.seconds(30), "the worker to stop once its backend closed") {
                await serving.result
            }
            let error = #expect(throws: IvyError.self, "the worker did not say its backend was closed") {
                try outcome.get()
            }
            #expect(error?.code == .closed)
            await worker.close()
            try await resume(h.queue, of: kind)
        }
    }

    /// Pauses the harness's queue and starts a worker on it that checks every `interval`;
    /// returns once the worker has seen the pause.
    private func startOnPausedQueue(_ h: Harness, _ kind: ConformanceBackend, checkEvery interval: Duration)
        async throws -> (any PausableQueueBackend, IvyWorker, Task<Void, any Error>)
    {
        let pausable = try #require(
            h.backend as? any PausableQueueBackend, "\(kind.name) cannot pause queues")
        try await pausable.pause(h.queue)
        let logger = RecordingLogger()
        let worker = try pauseWatchingWorker(h, queues: [h.queue], checkEvery: interval, logger: logger)
        let serving = Task { try await worker.run() }
        try await withDeadline(.seconds(30), "the worker to see the pause") {
            await logger.waitFor(
                "queue paused; reserving nothing from it until it is resumed queue=\(h.queue)")
        }
        return (pausable, worker, serving)
    }

    /// A worker on the harness's backend that checks for pauses every `interval` and logs to
    /// `logger`, whose lines the tests await; its results reach the harness's client.
    private func pauseWatchingWorker(
        _ h: Harness, queues: [QueueName], concurrency: Int = 16, checkEvery interval: Duration,
        logger: RecordingLogger
    ) throws -> IvyWorker {
        try IvyWorker(
            registry: h.registry, connection: IvyConnection(backend: h.backend, notifier: h.notifier),
            options: WorkerOptions(
                queues: queues, concurrency: concurrency, pollWait: .seconds(1), pauseCheckInterval: interval,
                notificationChannel: h.client.options.notificationChannel, logger: logger))
    }

    /// Resumes `queue` through a backend of its own, so that no paused state is left behind.
    private func resume(_ queue: QueueName, of kind: ConformanceBackend) async throws {
        guard kind.processURL != nil else { return }
        let (backend, notifier) = try await kind.open()
        try await (backend as? any PausableQueueBackend)?.resume(queue)
        await backend.close()
        await notifier.close()
    }
}
