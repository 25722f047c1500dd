// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// How an ``IvyWorker`` starts and stops, on the memory backend.
@Suite("Worker lifecycle", .serialized)
struct WorkerLifecycleTests {
    private func withWorker(
        _ body: (IvyClient, IvyWorker, TaskDefinition<Int, Int>) async throws -> Void
    ) async throws {
        let registry = TaskRegistry()
        let double = try registry.register("life.double", queue: "life") { (n: Int) in 2 * n }
        let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: MemoryNotifier())
        let client = try await IvyClient(
            registry: registry, connection: connection,
            options: ClientOptions(resultTimeout: .seconds(30), logger: SilentLogger(), encryption: nil))
        let worker = try IvyWorker(
            registry: registry, connection: connection,
            options: WorkerOptions(logger: SilentLogger(), encryption: nil))
        do { try await body(client, worker, double) } catch {
            await client.close()
            await connection.close()
            throw error
        }
        await client.close()
        await worker.close()
        await connection.close()
    }

    @Test func stopEndsARunAfterItsTasksAndARunCanFollow() async throws {
        try await withWorker { client, worker, double in
            for round in 1...2 {
                let running = Task { try await worker.run() }
                #expect(try await client.call(double, round) == 2 * round)
                worker.stop()
                try await withDeadline(.seconds(20), "the run to return") { try await running.value }
            }
        }
    }

    @Test func aWorkerRunsOnceAtATimeAndNotAfterClose() async throws {
        try await withWorker { client, worker, double in
            let running = Task { try await worker.run() }
            #expect(try await client.call(double, 4) == 8)
            let twice = await #expect(throws: IvyError.self) { try await worker.run() }
            #expect(twice?.code == .alreadyRunning)
            running.cancel()
            try await withDeadline(.seconds(20), "the run to return") { try await running.value }
            await worker.close()
            let closed = await #expect(throws: IvyError.self) { try await worker.run() }
            #expect(closed?.code == .closed)
        }
    }

    @Test func stopBeforeRunMakesTheNextRunReturnAtOnce() async throws {
        try await withWorker { _, worker, _ in
            worker.stop()
            try await withDeadline(.seconds(20), "the run to return") { try await worker.run() }
        }
    }

    /// SIGHUP, so that a slip cannot stop the test run the way SIGTERM or SIGINT would be read.
    @Test func runUntilSignalDrainsAndReturnsOnTheSignal() async throws {
        try await withWorker { client, worker, double in
            let heard = Locked<[TerminationSignal]>([])
            let running = Task {
                try await worker.run(untilSignal: [.hangUp]) { signal in heard.withLock { $0.append(signal) }
                }
            }
            // Served: the signal is watched from before the run started.
            #expect(try await client.call(double, 21) == 42)
            kill(getpid(), SIGHUP)
            try await withDeadline(.seconds(20), "the run to return on SIGHUP") { try await running.value }
            #expect(heard.value == [.hangUp])
        }
        // The disposition the process had before is back: ignored, as set in the suite's init.
        var current = sigaction()
        sigaction(SIGHUP, nil, &current)
        #expect(
            unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
                == unsafeBitCast(SIG_IGN, to: Int.self))
    }

    /// Ignores SIGHUP for the test process: what the watcher must restore, and a guard against
    /// a stray SIGHUP ending the run.
    init() { signal(SIGHUP, SIG_IGN) }

    @Test func closeWaitsForTheDrainBeforeItReturns() async throws {
        let registry = TaskRegistry()
        let gate = Gate()
        let gated = try registry.register("life.gated", queue: "gated") { (n: Int) -> Int in
            await gate.wait()
            return n
        }
        let backend = MemoryQueueBackend()
        let connection = IvyConnection(backend: backend, notifier: MemoryNotifier())
        let client = try await IvyClient(
            registry: registry, connection: connection, options: ClientOptions(logger: SilentLogger()))
        let worker = try IvyWorker(
            registry: registry, connection: connection, options: WorkerOptions(logger: SilentLogger()))
        let events = worker.events()
        let running = Task { try await worker.run() }
        let pending = try await client.delayedCall(gated, 7)
        _ = try await events.collect(1, "the gated task to start", where: \.isStarted)
        let closing = Task { await worker.close() }
        gate.open()
        await closing.value
        // Settled before close() returned: acknowledged and answered.
        #expect(await backend.size(of: "gated") == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        #expect(try await pending.value == 7)
        try await running.value
        await client.close()
        await connection.close()
    }

    @Test func aRunWhoseBackendIsClosedUnderItEndsWithClosed() async throws {
        let registry = TaskRegistry()
        try registry.register("life.any", queue: "any") { (n: Int) in n }
        let backend = MemoryQueueBackend()
        let worker = try IvyWorker(
            registry: registry, connection: IvyConnection(backend: backend, notifier: MemoryNotifier()),
            options: WorkerOptions(pollWait: .milliseconds(50), logger: SilentLogger()))
        let running = Task { try await worker.run() }
        // The connection is the caller's; closing it under the worker stops the worker, which
        // says so rather than returning as from a drain.
        await backend.close()
        let error = await #expect(throws: IvyError.self) { try await running.value }
        #expect(error?.code == .closed)
    }
}

/// A notifier that counts subscriptions.
private final class CountingNotifier: Notifier {
    let base = MemoryNotifier()
    let subscriptions = Locked(0)
    var endpoint: String { base.endpoint }
    func publish(_ payload: [UInt8], to channel: ChannelName) async throws {
        try base.publish(payload, to: channel)
    }
    func subscribe(to channel: ChannelName) async throws -> AsyncStream<[UInt8]> {
        subscriptions.withLock { $0 += 1 }
        return try base.subscribe(to: channel)
    }
    func subscribe(to channel: ChannelName, receive: @escaping @Sendable ([UInt8]) -> Void) async throws
        -> NotifierSubscription
    {
        subscriptions.withLock { $0 += 1 }
        return try await base.subscribe(to: channel, receive: receive)
    }
    func close() async { base.close() }
}

@Suite("Worker-only processes")
struct WorkerOnlyTests {
    /// Only clients wait for results: a worker process subscribes to nothing.
    @Test func aWorkerSubscribesToNoChannel() async throws {
        let registry = TaskRegistry()
        let double = try registry.register("solo.double", queue: "solo") { (n: Int) in 2 * n }
        let backend = MemoryQueueBackend()
        let workerNotifier = CountingNotifier()
        let worker = try IvyWorker(
            registry: registry, connection: IvyConnection(backend: backend, notifier: workerNotifier),
            options: WorkerOptions(logger: SilentLogger(), encryption: nil))
        let running = Task { try await worker.run() }
        // A client elsewhere (its own notifier, which the worker's results reach through the
        // shared memory notifier it wraps) gets its answer.
        let client = try await IvyClient(
            registry: registry, connection: IvyConnection(backend: backend, notifier: workerNotifier.base),
            options: ClientOptions(logger: SilentLogger(), encryption: nil))
        #expect(try await client.call(double, 5) == 10)
        worker.stop()
        try await running.value
        #expect(workerNotifier.subscriptions.value == 0)
        await client.close()
        await backend.close()
    }
}

@Suite("Trace context")
struct TraceContextTests {
    @Test func validHeadersAreKeptAndInvalidOnesRefused() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(TraceContext(traceparent: valid)?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(TraceContext(traceparent: valid, tracestate: "a=1,b=2")?.tracestate == "a=1,b=2")
        #expect(TraceContext(traceparent: valid, tracestate: "bad\u{1}")?.tracestate == nil)
        // A later version may carry more fields, and is carried on as the version-00 header it
        // starts with, however long it was.
        let later =
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + String(repeating: "x", count: 4096)
        #expect(TraceContext(traceparent: later)?.traceparent == valid)
        for invalid in [
            "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        ] {
            #expect(TraceContext(traceparent: invalid) == nil, "\(invalid)")
        }
    }
}
