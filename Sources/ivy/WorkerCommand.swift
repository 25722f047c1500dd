// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy
import IvyExamples

#if canImport(Glibc)
    import Glibc
#endif

/// `ivy worker`: serves the example tasks until SIGTERM or SIGINT, then drains.
enum WorkerCommand {
    static let help = """
        usage: ivy worker [--queue URL] [--notify URL] [--concurrency N] [--grace SECONDS]
                          [--visibility SECONDS] [--queues NAME,...]

        Runs the IvyExamples tasks (queue 'testpackage') until SIGTERM or SIGINT. On a signal it
        stops reserving, lets running tasks finish within the grace period, releases the rest
        and exits 0.

        options:
        \(SharedOptions.help)
          --concurrency N    tasks run at once (default 16)
          --grace SECONDS    drain time on shutdown (default 30)
          --visibility SECONDS  reservation timeout; heartbeats extend it (default 30)
          --queues LIST      comma-separated queues (default: testpackage)
          --events           print every task event on stderr
        """

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let concurrency = try arguments.integer("--concurrency", "-c", default: 16, range: 1...10_000)
        let grace = try arguments.seconds("--grace", default: .seconds(30), range: .zero...(.seconds(86_400)))
        let visibility = try arguments.seconds(
            "--visibility", default: .seconds(30), range: .milliseconds(30)...(.seconds(86_400)))
        let queues = try arguments.names("--queues") ?? [TestPackage.queue]
        let printEvents = arguments.flag("--events")
        try arguments.finish()
        if shared.isInProcess {
            Console.error(
                "ivy worker: note: memory:// is private to this process; use a broker URL to share work")
        }

        let (ivy, _) = try await shared.makeIvy()
        let options = WorkerOptions(
            concurrency: concurrency, visibilityTimeout: visibility, gracePeriod: grace)
        let serving = Task { try await ivy.listen(queues: queues, options: options) }
        TerminationSignals.shared.onSignal { signal in
            Console.error("ivy worker: \(signal == SIGTERM ? "SIGTERM" : "SIGINT") received; draining")
            serving.cancel()
        }
        let printer =
            printEvents ? Task { for await event in ivy.events() { Console.error("event: \(event)") } } : nil
        Console.error(
            "ivy worker: serving \(queues.joined(separator: ", ")) on \(shared.redactedQueue) (notifier \(shared.redactedNotify)), concurrency \(concurrency); pid \(getpid())"
        )
        do {
            try await serving.value
        } catch {
            printer?.cancel()
            await ivy.close()
            throw error
        }
        printer?.cancel()
        await ivy.close()
        Console.error("ivy worker: stopped")
        return 0
    }
}
