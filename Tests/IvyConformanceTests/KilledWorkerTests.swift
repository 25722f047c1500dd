// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `ivy worker` in a process of its own, SIGKILLed mid-task, on every backend such a worker can
/// serve: its message comes back and runs once more. Results go through Redis.
@Suite("Killed workers")
struct KilledWorkerTests {
    @Test(arguments: ConformanceBackend.outOfProcess)
    func aWorkerKilledMidTaskHasItsTaskRedeliveredAndRunOnceMore(_ kind: ConformanceBackend) async throws {
        let url = try #require(kind.processURL)
        let queue = try QueueName("kill-\(UUID().uuidString.prefix(8).lowercased())")
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let channel = try ChannelName("ivy-notifier-\(queue)")
        let connection: IvyConnection
        do {
            connection = try await IvyConnection.connect(
                queue: .url(url), notifier: .url(Services.redisURL), logger: SilentLogger())
        } catch {
            try Services.unavailable("\(kind.name) and Redis", error)
        }
        let producer = try await IvyClient(
            registry: registry, connection: connection,
            options: ClientOptions(
                resultTimeout: .seconds(120), notificationChannel: channel, logger: SilentLogger()))

        // A worker in its own process, with a one-second reservation.
        let child = try IvyProcess(
            [
                "worker", "--queue", url, "--notify", Services.redisURL, "--queues", queue.rawValue,
                "--visibility", "1", "--concurrency", "1", "--events",
            ],
            environment: ["IVY_NOTIFICATION_CHANNEL_NAME": channel.rawValue])
        // Long enough that a loaded machine cannot let it finish between its start and the kill
        // (5 s could, with the whole suite running beside it).
        let pending = try await producer.delayedCall(tasks.sleep, 15_000)
        try await withDeadline(.seconds(30), "the child worker to start the task") {
            await child.waitForStderr(containing: " started testpackage.")
        }
        kill(child.processIdentifier, SIGKILL)
        let killed = await child.finish()
        #expect(killed.status == SIGKILL)

        // Another worker takes the message over once the dead worker's reservation expires.
        let worker = try IvyWorker(
            registry: registry, connection: connection,
            options: WorkerOptions(
                concurrency: 2, visibilityTimeout: .seconds(5), pollWait: .seconds(1),
                notificationChannel: channel, logger: SilentLogger()))
        let events = worker.events()
        let rescuer = Task { try await worker.run() }
        #expect(try await pending.value == 15_000)
        let killedMidTask = !killed.stderr.contains(" succeeded testpackage.")
        #expect(killedMidTask, "the child finished the task before it was killed: \(killed.stderr)")
        let started = try await events.collect(1, "the rescuing worker to start") {
            $0.isStarted && $0.task?.taskID == pending.taskID
        }
        // Where heartbeats also raise the broker's count (IronMQ), a redelivery keeps the attempt
        // its message carries (PROTOCOL.md §4, step 2); elsewhere it is the second attempt.
        let countsHeartbeats =
            (connection.backend as? any ResendingQueueBackend)?.deliveryCountIncludesExtensions == true
        #expect(started.first?.task?.attempt == (countsHeartbeats ? 1 : 2))
        rescuer.cancel()
        try await rescuer.value
        // Exactly once more: nothing is left to run again.
        let backend = try #require(connection.backend as? any InspectableQueueBackend)
        #expect(try await backend.size(of: queue).live == 0)
        await producer.close()
        await connection.close()
    }
}
