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
        """

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let noWorker = arguments.flag("--no-worker")
        let n = try arguments.integer("-n", default: 5, range: 0...1000)
        let timeout = try arguments.seconds(
            "--timeout", default: .seconds(30), range: .milliseconds(1)...(.seconds(86_400)))
        try arguments.finish()
        if noWorker && shared.isInProcess {
            throw CommandLineArguments.UsageError(
                description: "--no-worker needs a shared broker: memory:// lives inside this process")
        }

        let (ivy, tasks) = try await shared.makeIvy(resultTimeout: timeout)
        Console.out("queue    \(shared.redactedQueue)   notifier \(shared.redactedNotify)")
        let events = ivy.events()
        let worker =
            noWorker ? nil : Task { try await ivy.listen(queues: [TestPackage.queue], concurrency: 4) }

        let pending = try await ivy.delayedCall(tasks.factorial, n)
        let outcome: Result<Int, any Error>
        do { outcome = .success(try await pending.value) } catch { outcome = .failure(error) }

        // Workers and producer emit concurrently; show the call's steps in flow order.
        var steps: [(rank: Int, line: String)] = []
        for await event in events where event.context?.taskID == pending.taskID {
            if let step = describe(event, ivy: ivy) { steps.append(step) }
            if case .callerResumed = event { break }
        }
        for step in steps.sorted(by: { $0.rank < $1.rank }) { Console.out(step.line) }

        worker?.cancel()
        _ = try? await worker?.value
        await ivy.close()
        switch outcome {
        case .success(let value):
            Console.out("testpackage.factorial(\(n)) = \(value)")
            return 0
        case .failure(let error):
            Console.error("ivy demo: testpackage.factorial(\(n)) failed: \(error)")
            return 1
        }
    }

    private static func describe(_ event: IvyEvent, ivy: Ivy) -> (rank: Int, line: String)? {
        switch event {
        case .scheduled(let c):
            return (0, "producer → queue      scheduled \(c.taskName) id=\(c.taskID) on queue '\(c.queue)'")
        case .started(let c):
            return (
                1 + 3 * (c.attempt - 1), "queue    → worker     running \(c.taskName), attempt \(c.attempt)"
            )
        case .retried(let c, let delay, let error):
            return (
                2 + 3 * (c.attempt - 1),
                "worker   → queue      attempt \(c.attempt) failed (\(error)); retry in \(delay)"
            )
        case .succeeded(let c, let duration):
            return (
                3 + 3 * (c.attempt - 1),
                "worker   → notifier   succeeded in \(milliseconds(duration)) ms; result published on \(ivy.notificationChannel)"
            )
        case .failed(let c, let error):
            return (
                3 + 3 * (c.attempt - 1),
                "worker   → notifier   failed for good: \(error); message dead-lettered"
            )
        case .callerResumed(_, let succeeded):
            return (1000, "notifier → caller     caller resumed with the \(succeeded ? "result" : "error")")
        case .deadLettered:
            return nil
        }
    }

    static func milliseconds(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return ms < 10 ? String(format: "%.3f", ms) : String(format: "%.1f", ms)
    }
}
