// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Synchronization
import Testing

/// Calls that run later (`after:`, `at:`, the `eta` of PROTOCOL.md §1), on every backend: the
/// backend holds the message back, the worker runs it no sooner than its time, and a message
/// that arrives early is put back without counting an attempt.
///
/// Times are only checked from below ("ran no sooner than its eta"), which a loaded machine
/// cannot break, since load only makes things later. The lower bound allows ``rounding``: the
/// `eta` is written in whole milliseconds, and a worker runs a message that arrives up to
/// ``WorkerRuntime`` 's 5 ms tolerance early rather than putting it back for a moment.
@Suite("Calls that run later")
struct RunLaterConformanceTests {
    static let rounding: TimeInterval = 0.010

    @Test(arguments: ConformanceBackend.all)
    func aDelayedSendIsHeldBackUntilItsDelay(_ kind: ConformanceBackend) async throws {
        let (backend, notifier) = try await kind.open()
        do {
            try await checkHeldBack(backend, kind: kind)
        } catch {
            await backend.close()
            await notifier.close()
            throw error
        }
        await backend.close()
        await notifier.close()
    }

    private func checkHeldBack<Backend: InspectableQueueBackend>(_ backend: Backend, kind: ConformanceBackend)
        async throws
    {
        let delayed = try #require(
            backend as? any DelayedSendQueueBackend, "\(kind.name) cannot send with a delay")
        let queue = freshQueue("later")
        let clock = ContinuousClock()
        let start = clock.now
        _ = try await delayed.send(Array("later".utf8), to: queue, after: .seconds(1))
        let early = try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .zero)
        // Right after the send nothing is handed out; a machine so loaded that this look came
        // after the delay may find it, but never sooner (a lower bound, which load cannot break).
        if let first = early.first {
            #expect(
                clock.now - start >= .seconds(1) - .milliseconds(10),
                "a message sent for later was handed out at once")
            try await backend.ack(first)
            return
        }
        let (body, at) = try await withDeadline(.seconds(30), "the delayed message") {
            while true {
                let batch = try await backend.reserve(
                    from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                if let first = batch.first {
                    try await backend.ack(first)
                    return (first.body, clock.now)
                }
            }
        }
        #expect(body == Array("later".utf8))
        #expect(at - start >= .seconds(1) - .milliseconds(10), "handed out before its delay")
    }

    @Test(arguments: ConformanceBackend.all)
    func aCallAfterOneSecondRunsNoSoonerAndAnswers(_ kind: ConformanceBackend) async throws {
        let runs = RunLog()
        try await Harness.run(kind) { h in
            let task = try TaskDefinition<Int, Int>(
                name: "conformance.when", options: TaskOptions(queue: h.queue))
            let before = Date()
            #expect(try await h.client.call(task, 7, timeout: .seconds(60), after: .seconds(1)) == 7)
            let run = try #require(runs.all.first)
            #expect(run.at.timeIntervalSince(before) >= 1 - Self.rounding, "ran before its eta")
            #expect(run.attempt == 1)
            let at = Date().addingTimeInterval(1)
            let pending = try await h.client.delayedCall(task, 8, timeout: .seconds(30), at: at)
            #expect(try await pending.value == 8)
            let second = try #require(runs.all.last)
            #expect(second.at.timeIntervalSince(at) >= -Self.rounding, "ran before its at:")
        } register: { registry, queue in
            try Self.registerWhen(registry, queue, runs)
        }
    }

    /// A message whose `eta` is ahead, sent with a plain send (as a backend whose longest delay
    /// is shorter than the wait would deliver it): the worker puts it back, and it runs no
    /// sooner than its eta, at attempt 1.
    @Test(arguments: ConformanceBackend.all)
    func aWorkerPutsBackAMessageThatArrivesEarly(_ kind: ConformanceBackend) async throws {
        let runs = RunLog()
        try await Harness.run(kind) { h in
            let eta = Date().addingTimeInterval(1)
            let message = TaskMessage(
                name: "conformance.when", args: Array("[3]".utf8), id: "early-\(h.queue)", eta: eta)
            _ = try await h.backend.send(message.encoded(), to: h.queue)
            let run = try await withDeadline(.seconds(30), "the early message to run") { await runs.next() }
            #expect(run.at.timeIntervalSince(eta) >= -Self.rounding, "ran before its eta")
            #expect(run.attempt == 1, "waiting counted an attempt")
        } register: { registry, queue in
            try Self.registerWhen(registry, queue, runs)
        }
    }

    /// A call sent for 2 s later while a worker serves the queue; that worker stops, a new one
    /// starts and runs it. (Should a loaded machine take past the eta to stop the first worker,
    /// that one may have run it: the checks hold either way.)
    @Test(arguments: ConformanceBackend.all)
    func aWaitingCallSurvivesAWorkerRestart(_ kind: ConformanceBackend) async throws {
        let runs = RunLog()
        try await Harness.run(kind, worker: nil, resultTimeout: .seconds(60)) { h in
            let task = try TaskDefinition<Int, Int>(
                name: "conformance.when", options: TaskOptions(queue: h.queue))
            let first = try h.makeWorker(WorkerOptions(concurrency: 2, pollWait: .seconds(1)))
            let serving = Task { try await first.run() }
            let before = Date()
            let pending = try await h.client.delayedCall(task, 5, timeout: .seconds(60), after: .seconds(2))
            serving.cancel()
            try await withDeadline(.seconds(30), "the first worker to stop") { try await serving.value }
            await first.close()
            let second = try h.makeWorker(WorkerOptions(concurrency: 2, pollWait: .seconds(1)))
            let servingAgain = Task { try await second.run() }
            do {
                #expect(try await pending.value == 5)
            } catch {
                servingAgain.cancel()
                _ = try? await servingAgain.value
                await second.close()
                throw error
            }
            servingAgain.cancel()
            try await withDeadline(.seconds(30), "the second worker to stop") { try await servingAgain.value }
            await second.close()
            let run = try #require(runs.all.first)
            #expect(run.at.timeIntervalSince(before) >= 2 - Self.rounding, "ran before its eta")
            #expect(run.attempt == 1)
        } register: { registry, queue in
            try Self.registerWhen(registry, queue, runs)
        }
    }

    @Test func aBackendThatCannotWaitRefusesACallForLater() async throws {
        let connection = IvyConnection(backend: NoDelayBackend(), notifier: MemoryNotifier())
        let registry = TaskRegistry()
        let task = try registry.register("conformance.when", queue: "later") { (value: Int) in value }
        let client = try await IvyClient(registry: registry, connection: connection)
        let refused = await #expect(throws: IvyError.self) {
            _ = try await client.enqueue(task, 1, after: .seconds(1))
        }
        #expect(refused?.code == .unsupportedBackend)
        let both = await #expect(throws: IvyError.self) {
            _ = try await client.enqueue(task, 1, after: .seconds(1), at: Date())
        }
        #expect(both?.code == .invalidConfiguration)
        let negative = await #expect(throws: IvyError.self) {
            _ = try await client.enqueue(task, 1, after: .seconds(-1))
        }
        #expect(negative?.code == .invalidConfiguration)
        await client.close()
        await connection.close()
    }

    private static func registerWhen(_ registry: TaskRegistry, _ queue: QueueName, _ runs: RunLog) throws {
        try registry.register("conformance.when", queue: queue) { (value: Int) in
            runs.record(Run(at: Date(), attempt: TaskContext.current?.attempt ?? 0))
            return value
        }
    }
}

struct Run: Sendable {
    var at: Date
    var attempt: Int
}

/// The runs of a task, in order, and a way to await the next.
final class RunLog: Sendable {
    private let state = Mutex<(runs: [Run], waiters: [CheckedContinuation<Run, Never>], taken: Int)>(
        ([], [], 0))

    var all: [Run] { state.withLock { $0.runs } }

    func record(_ run: Run) {
        let waiter = state.withLock { state -> CheckedContinuation<Run, Never>? in
            state.runs.append(run)
            guard !state.waiters.isEmpty else { return nil }
            state.taken += 1
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: run)
    }

    /// The next run not yet returned by this method.
    func next() async -> Run {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Run? in
                guard state.taken < state.runs.count else {
                    state.waiters.append(continuation)
                    return nil
                }
                state.taken += 1
                return state.runs[state.taken - 1]
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// A memory backend without the capability, as a third-party backend may be.
private struct NoDelayBackend: QueueBackend {
    let inner = MemoryQueueBackend()
    var endpoint: String { "nodelay://" }
    var maximumMessageSize: Int { 1 << 20 }
    func send(_ body: [UInt8], to queue: QueueName) async throws -> String {
        try await inner.send(body, to: queue)
    }
    func reserve(from queue: QueueName, count: Int, visibility: Duration, wait: Duration) async throws
        -> [Reservation<MemoryQueueBackend.Receipt>]
    {
        try await inner.reserve(from: queue, count: count, visibility: visibility, wait: wait)
    }
    func ack(_ reservation: Reservation<MemoryQueueBackend.Receipt>) async throws {
        try await inner.ack(reservation)
    }
    func extend(_ reservation: Reservation<MemoryQueueBackend.Receipt>, visibility: Duration) async throws
        -> Reservation<MemoryQueueBackend.Receipt>
    {
        try await inner.extend(reservation, visibility: visibility)
    }
    func release(_ reservation: Reservation<MemoryQueueBackend.Receipt>, delay: Duration) async throws {
        try await inner.release(reservation, delay: delay)
    }
    func deadLetter(_ reservation: Reservation<MemoryQueueBackend.Receipt>, reason: String) async throws {
        try await inner.deadLetter(reservation, reason: reason)
    }
    func close() async { await inner.close() }
}
