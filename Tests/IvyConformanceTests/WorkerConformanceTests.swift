// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

/// Client, worker and notifier together, on every backend.
@Suite("Producer and worker")
struct WorkerConformanceTests {
    @Test(arguments: ConformanceBackend.all)
    func callsReturnTheirResults(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            #expect(try await h.client.call(h.tasks.factorial, 5) == 120)
            #expect(try await h.client.call(h.tasks.add, 2, 3) == 5)
            #expect(try await h.client.call(h.tasks.echo, "héllo ✓ \"quoted\" \n") == "héllo ✓ \"quoted\" \n")
            let pending = try await h.client.delayedCall(h.tasks.factorial, 10)
            #expect(try await pending.value == 3_628_800)
            #expect(try await pending.value == 3_628_800, "a second await gives the same outcome")
            #expect(try await h.size() == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aCallWhoseMessageTheQueueRefusesEndsWithTheQueuesError(_ kind: ConformanceBackend) async throws {
        // `call` does not wait for the send: its failure has to reach the caller through the result slot.
        try await Harness.run(kind, worker: nil) { h in
            await h.backend.close()
            let error = await #expect(throws: IvyError.self) {
                _ = try await h.client.call(h.tasks.add, 1, 2)
            }
            #expect(error?.code == .closed)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aCallShowsItsWholeFlowAsEvents(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let events = h.events()
            let pending = try await h.client.delayedCall(h.tasks.add, 40, 2)
            #expect(try await pending.value == 42)
            let flow = try await events.collect(4, "the call's four events") {
                $0.task?.taskID == pending.taskID
            }
            // Client and worker events come through separate streams: only their kinds are
            // certain, not how the two interleave.
            #expect(flow.contains { $0.kind == .scheduled })
            #expect(flow.contains { $0.isStarted })
            #expect(flow.contains { $0.isSucceeded })
            let resumed = flow.first { $0.kind == .callerResumed }
            #expect(resumed?.succeeded == true)
            #expect(resumed?.task?.queue == h.queue)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aFailingTaskIsRetriedThenDeadLetteredAndTheCallerGetsATypedError(_ kind: ConformanceBackend)
        async throws
    {
        try await Harness.run(kind) { h in
            let events = h.events()
            let error = await #expect(throws: RemoteTaskError.self) {
                try await h.client.call(h.tasks.fail, "boom")
            }
            #expect(error?.name == "TestFailure")
            #expect(error?.message == "boom")
            #expect(error?.attempt == 3)
            #expect(error?.taskName == "testpackage.fail")
            let retries = try await events.collect(2, "two retries", where: \.isRetried)
            #expect(retries.compactMap(\.task?.attempt) == [1, 2])
            let letters = try await h.deadLetters()
            #expect(letters.count == 1)
            #expect(letters.first?.reason.contains("TestFailure: boom") == true)
            #expect(try await h.size().ready == 0)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aPermanentFailureIsNotRetried(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let error = await #expect(throws: RemoteTaskError.self) {
                try await h.client.call(h.tasks.factorial, 21)
            }
            #expect(error?.name == "OverflowError")
            #expect(error?.attempt == 1)
            #expect(error?.retryable == false)
            let letters = try await h.deadLetters()
            #expect(letters.count == 1)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func anUnknownTaskIsDeadLetteredAndTheCallerTold(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let missing = try TaskDefinition<Int, Int>(
                name: "testpackage.missing", options: TaskOptions(queue: h.queue))
            let error = await #expect(throws: RemoteTaskError.self) { try await h.client.call(missing, 1) }
            #expect(error?.name == "UnknownTask")
            let letters = try await h.deadLetters()
            #expect(letters.count == 1)
            #expect(letters.first?.reason.contains("testpackage.missing") == true)
            #expect(try await h.client.call(h.tasks.add, 1, 1) == 2, "the worker keeps going")
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func undecodableArgumentsAreDeadLetteredWithoutRetry(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            // A producer whose registration disagrees with the worker's.
            let mismatched = try TaskDefinition<String, Int>(
                name: "testpackage.factorial", options: TaskOptions(queue: h.queue))
            let error = await #expect(throws: RemoteTaskError.self) {
                try await h.client.call(mismatched, "five")
            }
            #expect(error?.name == "ArgumentsUndecodable")
            #expect(error?.attempt == 1, "factorial retries, but undecodable arguments never succeed")
            #expect(try await h.deadLetters().count == 1)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func malformedMessagesAreDeadLetteredWithTheReasonAndTheWorkerKeepsGoing(_ kind: ConformanceBackend)
        async throws
    {
        try await Harness.run(kind) { h in
            let events = h.events()
            let bodies = [
                "{not json", "[1,2,3]", #"{"name":"testpackage.add"}"#,
                #"{"name":"testpackage.add","args":{}}"#, "",
            ]
            for body in bodies { _ = try await h.sendRaw(body) }
            let dead = try await events.collect(bodies.count, "dead letters", where: \.isDeadLettered)
            for event in dead { #expect(event.error?.contains("malformedMessage") == true) }
            let letters = try await h.deadLetters()
            #expect(Set(letters.map { String(decoding: $0.body, as: UTF8.self) }) == Set(bodies))
            #expect(try await h.client.call(h.tasks.add, 2, 2) == 4)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aNodeIvyMessageRunsAndItsResultGoesToTheBaseChannel(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let base = try await h.notifier.subscribe(to: try #require(h.client.options.notificationChannel))
            let messageID = try await h.sendRaw(#"{"name":"testpackage.add","options":{},"args":[2,3]}"#)
            let notification = try await withDeadline(.seconds(20), "the base-channel notification") {
                for await payload in base {
                    if let notification = try? ResultNotification(decoding: payload),
                        notification.id == messageID
                    {
                        return notification
                    }
                }
                throw DeadlineExceeded(limit: .seconds(20), what: "the notification (stream ended)")
            }
            #expect(notification.name == "testpackage.add")
            #expect(notification.outcome == .success(result: Array("[5]".utf8)))
        }
    }

    /// PROTOCOL.md §3: every outcome of a message without `notify` goes to the base channel,
    /// failures the task never saw (unknown task, undecodable arguments) included.
    @Test(arguments: ConformanceBackend.all)
    func aNodeIvyMessageThatCannotRunIsAnsweredOnTheBaseChannel(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let base = try await h.notifier.subscribe(to: try #require(h.client.options.notificationChannel))
            let cases = [
                (#"{"name":"nobody.has","options":{},"args":[1]}"#, "UnknownTask"),
                (#"{"name":"testpackage.add","options":{},"args":["two",3]}"#, "ArgumentsUndecodable"),
            ]
            var sent: [String: String] = [:]
            for (body, name) in cases { sent[try await h.sendRaw(body)] = name }
            let expected = sent
            let heard = try await withDeadline(.seconds(20), "both base-channel notifications") {
                var heard: [String: String] = [:]
                for await payload in base {
                    if let notification = try? ResultNotification(decoding: payload),
                        case .failure(let error) = notification.outcome
                    {
                        heard[notification.id] = error.name
                    }
                    if heard.count == expected.count { return heard }
                }
                throw DeadlineExceeded(limit: .seconds(20), what: "the notifications (stream ended)")
            }
            #expect(heard == expected)
            #expect(try await h.deadLetters().count == 2)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func anAttemptPastItsTimeoutIsCancelled(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let error = await #expect(throws: RemoteTaskError.self) {
                try await h.client.call(hang(h), 60_000)
            }
            #expect(error?.name == "TaskTimedOut")
            let letters = try await h.deadLetters()
            #expect(letters.count == 1)
        } register: { registry, queue in
            try registry.register("conformance.hang", queue: queue, timeout: .milliseconds(200)) {
                (ms: Int) in
                try await Task.sleep(for: .milliseconds(ms))
                return ms
            }
        }
    }

    private func hang(_ h: Harness) throws -> TaskDefinition<Int, Int> {
        try TaskDefinition(name: "conformance.hang", options: TaskOptions(queue: h.queue))
    }

    @Test(arguments: ConformanceBackend.all)
    func heartbeatsKeepALongTaskReservedPastTheVisibilityTimeout(_ kind: ConformanceBackend) async throws {
        let probe = ConcurrencyProbe()
        // Heartbeats every 2 s keep a 6 s reservation for a 14 s task: each beat has four
        // seconds of slack, which a machine with every core busy still leaves (two did not,
        // once the whole suite grew; scripts/test-under-load.sh).
        // The result may take long on a loaded machine; that is not what this test is about.
        try await Harness.run(
            kind, worker: WorkerOptions(concurrency: 2, visibilityTimeout: .seconds(6)),
            resultTimeout: .seconds(120)
        ) {
            h in
            let slow = try TaskDefinition<Int, Int>(
                name: "conformance.slow", options: TaskOptions(queue: h.queue))
            #expect(try await h.client.call(slow, 14_000) == 14_000)
            #expect(probe.total == 1, "the message was redelivered while its task was running")
        } register: { registry, queue in
            try registry.register("conformance.slow", queue: queue) { (ms: Int) in
                probe.enter()
                defer { probe.leave() }
                try await Task.sleep(for: .milliseconds(ms))
                return ms
            }
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func concurrencyLimitIsHonoured(_ kind: ConformanceBackend) async throws {
        let probe = ConcurrencyProbe()
        try await Harness.run(kind, worker: WorkerOptions(concurrency: 3)) { h in
            let track = try TaskDefinition<Int, Int>(
                name: "conformance.track", options: TaskOptions(queue: h.queue))
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<12 { group.addTask { try await h.client.call(track, index) } }
                var sum = 0
                for try await value in group { sum += value }
                #expect(sum == (0..<12).reduce(0, +))
            }
            #expect(probe.total == 12)
            #expect(probe.maximum <= 3)
        } register: { registry, queue in
            try registry.register("conformance.track", queue: queue) { (value: Int) in
                probe.enter()
                defer { probe.leave() }
                try await Task.sleep(for: .milliseconds(40))
                return value
            }
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aThousandConcurrentCallsAllGetTheirOwnResult(_ kind: ConformanceBackend) async throws {
        // A thousand calls share the machine with every other suite: the timeout only turns a
        // hang into a failure, and 20 s was eaten by a busy CI machine.
        try await Harness.run(kind, worker: WorkerOptions(concurrency: 32), resultTimeout: .seconds(180)) {
            h in
            let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for index in 0..<1000 {
                    group.addTask { (index, try await h.client.call(h.tasks.add, index, index)) }
                }
                var results: [Int: Int] = [:]
                for try await (index, value) in group { results[index] = value }
                return results
            }
            #expect(results.count == 1000)
            #expect(results.allSatisfy { $0.value == 2 * $0.key })
            #expect(try await h.size() == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func stoppingDrainsTasksInFlight(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, worker: nil) { h in
            let ivyWorker = try h.makeWorker(WorkerOptions(concurrency: 4, gracePeriod: .seconds(30)))
            let events = ivyWorker.events()
            let worker = Task { try await ivyWorker.run() }
            var pendings: [PendingResult<Int>] = []
            for _ in 0..<4 { pendings.append(try await h.client.delayedCall(h.tasks.sleep, 300)) }
            _ = try await events.collect(4, "four tasks started", where: \.isStarted)
            worker.cancel()
            try await withDeadline(.seconds(20), "the worker to drain") { try await worker.value }
            for pending in pendings { #expect(try await pending.value == 300) }
            #expect(try await h.size() == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func tasksStillRunningAfterTheGracePeriodAreReleasedForAnotherWorker(_ kind: ConformanceBackend)
        async throws
    {
        try await Harness.run(kind, worker: nil) { h in
            let ivyWorker = try h.makeWorker(WorkerOptions(concurrency: 2, gracePeriod: .milliseconds(100)))
            let events = ivyWorker.events()
            let worker = Task { try await ivyWorker.run() }
            _ = try await h.client.enqueue(h.tasks.sleep, 60_000)
            _ = try await events.collect(1, "the task started", where: \.isStarted)
            worker.cancel()
            try await withDeadline(.seconds(20), "the worker to stop") { try await worker.value }
            let size = try await h.size()
            #expect(size.ready == 1, "the interrupted message is back in the queue")
            #expect(size.reserved == 0)
            #expect(size.dead == 0)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aResultThatNeverComesEndsInATimeoutAndTheMessageIsKept(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, worker: nil) { h in
            let error = await #expect(throws: IvyError.self) {
                try await h.client.call(h.tasks.add, 1, 2, timeout: .milliseconds(200))
            }
            #expect(error?.code == .resultTimedOut)
            #expect(error?.taskName == "testpackage.add")
            let size = try await h.size()
            #expect(size.ready == 1)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aMessagePastItsDeadlineIsDeadLetteredWithoutRunning(_ kind: ConformanceBackend) async throws {
        let probe = ConcurrencyProbe()
        try await Harness.run(kind) { h in
            let events = h.events()
            let expired = TaskMessage(
                name: "conformance.track", args: Array("[1]".utf8), id: "expired-1",
                deadline: Date(timeIntervalSinceNow: -1))
            _ = try await h.backend.send(expired.encoded(), to: h.queue)
            let dead = try await events.collect(1, "the dead letter", where: \.isDeadLettered)
            let reason = try #require(dead[0].error)
            #expect(reason.contains("deadlineExpired"))
            #expect(probe.total == 0)
        } register: { registry, queue in
            try registry.register("conformance.track", queue: queue) { (value: Int) in
                probe.enter()
                probe.leave()
                return value
            }
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aTaskThatWantsNoResultCanOnlyBeEnqueued(_ kind: ConformanceBackend) async throws {
        let probe = ConcurrencyProbe()
        try await Harness.run(kind) { h in
            let events = h.events()
            let fireAndForget = try TaskDefinition<Int, Int>(
                name: "conformance.quiet", options: TaskOptions(queue: h.queue, resultWanted: false))
            let error = await #expect(throws: IvyError.self) { try await h.client.call(fireAndForget, 1) }
            #expect(error?.code == .resultNotWanted)
            _ = try await h.client.enqueue(fireAndForget, 7)
            _ = try await events.collect(1, "the enqueued task to succeed", where: \.isSucceeded)
            #expect(probe.total == 1)
        } register: { registry, queue in
            try registry.register("conformance.quiet", queue: queue, resultWanted: false) { (value: Int) in
                probe.enter()
                probe.leave()
                return value
            }
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func closingEndsWaitingCalls(_ kind: ConformanceBackend) async throws {
        let (backend, notifier) = try await kind.open()
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: freshQueue())
        let connection = IvyConnection(backend: backend, notifier: notifier)
        let ivy = try await IvyClient(
            registry: registry, connection: connection, options: ClientOptions(logger: SilentLogger()))
        let pending = try await ivy.delayedCall(tasks.factorial, 3)
        await ivy.close()
        let error = await #expect(throws: IvyError.self) { try await pending.value }
        #expect(error?.code == .closed)
        let afterClose = await #expect(throws: IvyError.self) { try await ivy.enqueue(tasks.factorial, 3) }
        #expect(afterClose?.code == .closed)
        await connection.close()
    }

    @Test(arguments: ConformanceBackend.all)
    func aTaskThatIgnoresCancellationCannotHoldTheWorker(_ kind: ConformanceBackend) async throws {
        let gate = Gate()
        try await Harness.run(kind, worker: nil) { h in
            let ivyWorker = try h.makeWorker(WorkerOptions(concurrency: 1, gracePeriod: .milliseconds(100)))
            let worker = Task { try await ivyWorker.run() }
            let stubborn = try TaskDefinition<Int, Int>(
                name: "conformance.stubborn", options: TaskOptions(queue: h.queue))
            let error = await #expect(throws: RemoteTaskError.self) { try await h.client.call(stubborn, 1) }
            #expect(error?.name == "TaskTimedOut")
            // Its only slot is free again although the body still runs.
            let sum = try await h.client.call(h.tasks.add, 1, 1)
            #expect(sum == 2)
            // And a second stubborn body does not keep the worker from stopping.
            _ = try await h.client.enqueue(stubborn, 2)
            worker.cancel()
            try await withDeadline(.seconds(20), "the worker to stop") { try await worker.value }
        } register: { registry, queue in
            try registry.register("conformance.stubborn", queue: queue, timeout: .milliseconds(200)) {
                (value: Int) in
                await gate.wait()
                return value
            }
        }
        gate.open()
    }

    @Test(arguments: ConformanceBackend.all)
    func aMessageDeliveredMoreOftenThanItsTaskAllowsIsDeadLettered(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let events = h.events()
            // As if earlier deliveries had crashed their workers: attempt 5 of a task allowed 1
            // attempt and 3 redeliveries.
            let message = TaskMessage(
                name: "testpackage.add", args: Array("[1,2]".utf8), id: "crashy-1", attempt: 5)
            _ = try await h.backend.send(message.encoded(), to: h.queue)
            let failed = try await events.collect(1, "the failure", where: \.isFailed)
            #expect(failed[0].error?.hasPrefix("AttemptsExhausted") == true)
            let letters = try await h.deadLetters()
            #expect(letters.count == 1)
        }
    }
}
