// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples

/// `ivy demo`: one call of `testpackage.factorial(5)` through the queue, with its flow shown.
enum DemoCommand {
    static let help = """
        usage: ivy demo [--queue URL] [--notify URL] [--no-worker] [-n N] [--timeout SECONDS]

        Calls testpackage.factorial(N) (5 by default) through the queue and shows each step:
        producer -> queue -> worker -> notifier -> caller. Producer and worker run in this
        process unless --no-worker is given (then start `ivy worker` elsewhere first).

        options:
        \(SharedOptions.help)
          --no-worker        do not start a worker in this process
          -n N               the factorial's argument (default 5)
          --timeout SECONDS  how long to wait for the result (default 30)

        \(ExitStatus.help)
        """

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let noWorker = arguments.flag("--no-worker")
        let n = try arguments.integer("-n", default: 5, range: 0...1000)
        let timeout = try arguments.seconds(
            "--timeout", default: .seconds(30), range: .milliseconds(1)...(.seconds(86_400)))
        try arguments.finish()
        if noWorker && (shared.isInProcess || shared.notifiesInProcess) {
            throw CommandLineArguments.UsageError(
                description:
                    "--no-worker needs a shared broker and notifier: memory:// lives inside this process")
        }

        let (registry, tasks) = try shared.registry()
        let connection = try await shared.connect()
        let client: IvyClient
        let worker: IvyWorker?
        do {
            client = try await shared.makeClient(registry, on: connection, resultTimeout: timeout)
            worker =
                noWorker
                ? nil
                : try shared.makeWorker(
                    registry, on: connection,
                    options: WorkerOptions(queues: [TestPackage.queue], concurrency: 4))
        } catch {
            await connection.close()
            throw error
        }
        Console.out("queue    \(shared.redactedQueue)   notifier \(shared.redactedNotify)")
        // Client and worker emit concurrently; both streams feed one, shown in flow order below.
        let (events, sink) = AsyncStream<IvyEvent>.makeStream()
        let feeds = [client.events(), worker?.events()].compactMap { $0 }.map { stream in
            Task { for await event in stream { sink.yield(event) } }
        }
        let serving = worker.map { worker in Task { try await worker.run() } }

        let pending = try await client.delayedCall(tasks.factorial, n)
        let hint = UnansweredCallHint.watch(
            when: noWorker, command: "demo", queue: TestPackage.queue, on: connection, shared)
        let outcome: Result<Int, any Error>
        do { outcome = .success(try await pending.value) } catch { outcome = .failure(error) }
        hint?.cancel()

        var steps: [(rank: Int, line: String)] = []
        for await event in events where event.task?.taskID == pending.taskID {
            if let step = describe(event, channel: client.notificationChannel) { steps.append(step) }
            if event.kind == .callerResumed { break }
        }
        for step in steps.sorted(by: { $0.rank < $1.rank }) { Console.out(step.line) }

        serving?.cancel()
        _ = try? await serving?.value
        for feed in feeds { feed.cancel() }
        await client.close()
        await worker?.close()
        await connection.close()
        switch outcome {
        case .success(let value):
            Console.out("testpackage.factorial(\(n)) = \(value)")
            return ExitStatus.success.rawValue
        case .failure(let error):
            Console.error("ivy demo: testpackage.factorial(\(n)) failed: \(error)")
            return ExitStatus.taskFailed.rawValue
        }
    }

    private static func describe(_ event: IvyEvent, channel: ChannelName) -> (rank: Int, line: String)? {
        guard let c = event.task else { return nil }
        let queue = c.queue.map { "\($0)" } ?? "?"
        switch event.kind {
        case .scheduled:
            return (0, "producer → queue      scheduled \(c.taskName) id=\(c.taskID) on queue '\(queue)'")
        case .started:
            return (
                1 + 3 * (c.attempt - 1), "queue    → worker     running \(c.taskName), attempt \(c.attempt)"
            )
        case .retried:
            return (
                2 + 3 * (c.attempt - 1),
                "worker   → queue      attempt \(c.attempt) failed (\(event.error ?? "")); retry in \(event.delay ?? .zero)"
            )
        case .succeeded:
            return (
                3 + 3 * (c.attempt - 1),
                "worker   → notifier   succeeded in \(milliseconds(event.duration ?? .zero)) ms; result published on \(channel)"
            )
        case .failed:
            return (
                3 + 3 * (c.attempt - 1),
                "worker   → notifier   failed for good: \(event.error ?? ""); message dead-lettered"
            )
        case .callerResumed:
            let what = event.succeeded == true ? "result" : "error"
            return (1000, "notifier → caller     caller resumed with the \(what)")
        default:
            return nil
        }
    }

    static func milliseconds(_ duration: Duration) -> String {
        let ms = EventLine.milliseconds(duration)
        return ms < 10 ? String(format: "%.3f", ms) : String(format: "%.1f", ms)
    }
}
