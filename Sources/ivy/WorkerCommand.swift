// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy
import IvyExamples
import IvyHTTP

#if canImport(Glibc)
    import Glibc
#endif

/// `ivy worker`: serves the example tasks and `--exec` commands until SIGTERM or SIGINT, then
/// drains.
enum WorkerCommand {
    static let help = """
        usage: ivy worker [--queue URL] [--notify URL] [--concurrency N] [--grace SECONDS]
                          [--visibility SECONDS] [--queues NAME,...] [--exec NAME=COMMAND ...]
                          [--events | --json] [--allow-cancel-running] [--metrics ADDRESS]
                          [--schedule 'CRON NAME [JSON_ARGS]' ...]

        Runs the IvyExamples tasks (queue 'testpackage') and the --exec tasks until SIGTERM or
        SIGINT. On a signal it stops reserving, lets running tasks finish within the grace
        period, releases the rest and exits 0.

        options:
        \(SharedOptions.help)
          --concurrency N    tasks run at once (default 16)
          --grace SECONDS    drain time on shutdown (default 30)
          --visibility SECONDS  reservation timeout; heartbeats extend it (default 30)
          --queues LIST      comma-separated queues (default: testpackage)
          --events           print every task event on stderr, one line each:
                             TIME EVENT TASK id=ID attempt=N queue=Q [message=ID]
                             [DURATION ms] [retry in DELAY ms] [: ERROR]
          --json             every task event as one JSON object per line on stdout
          --allow-cancel-running  let `ivy cancel` stop calls running here (Swift task
                             cancellation; an --exec command gets SIGTERM)
        \(MetricsEndpoint.help)
        \(ScheduleSpec.help)
        \(ExecOptions.help)

        \(ExitStatus.help)
        """

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let concurrency = try arguments.integer("--concurrency", "-c", default: 16, range: 1...10_000)
        let grace = try arguments.seconds("--grace", default: .seconds(30), range: .zero...(.seconds(86_400)))
        let visibility = try arguments.seconds(
            "--visibility", default: .seconds(30), range: .milliseconds(30)...(.seconds(86_400)))
        let exec = try ExecOptions(&arguments, besides: try shared.registry().0.names)
        let queues = exec.queues(adding: try arguments.queueNames("--queues") ?? [TestPackage.queue])
        let json = arguments.flag("--json")
        let printEvents = arguments.flag("--events") || json
        let allowCancelRunning = arguments.flag("--allow-cancel-running")
        let metricsAddress = try MetricsEndpoint.address(&arguments)
        var schedules: [ScheduleSpec] = []
        for text in try arguments.values("--schedule") { schedules.append(try ScheduleSpec(text)) }
        try arguments.finish()
        let (registry, _) = try shared.registry()
        let commands = try exec.register(in: registry)
        do {
            // After the --exec tasks, whose queues a schedule of theirs takes.
            for schedule in schedules { try schedule.schedule(in: registry) }
        } catch {
            await commands.close()
            throw error
        }
        if shared.isInProcess {
            Console.error(
                "ivy worker: note: memory:// is private to this process; use a broker URL to share work")
        } else if shared.notifiesInProcess {
            Console.error(
                "ivy worker: note: --notify memory:// keeps results in this process, where no caller "
                    + "waits; use a notifier the callers share (redis://…)")
        }

        var options = WorkerOptions(
            queues: queues, concurrency: concurrency, visibilityTimeout: visibility, gracePeriod: grace)
        options.allowCancelRunning = allowCancelRunning
        let connection = try await shared.connect()
        let worker: IvyWorker
        do { worker = try shared.makeWorker(registry, on: connection, options: options) } catch {
            await connection.close()
            throw error
        }
        let metrics: HTTPServer?
        do { metrics = try metricsAddress.map { try MetricsEndpoint.start(for: worker, on: $0) } } catch {
            await worker.close()
            await commands.close()
            await connection.close()
            throw error
        }
        // Subscribed before the run, so that no early event is missed. The lines go out from a
        // thread of their own; with --json, a reader that has gone (`| head -1`) stops the
        // worker as a signal would, with the drain, instead of killing it mid-task.
        let events = printEvents ? worker.events() : nil
        let writer = events.map { _ in
            LineWriter(descriptor: json ? 1 : 2) {
                // Events on stderr are for people: a closed stderr only ends the printing.
                guard json else { return }
                Console.error("ivy worker: standard output was closed; draining")
                worker.stop()
            }
        }
        let printer = events.map { events in
            Task {
                for await event in events {
                    let line = EventLine(event)
                    writer?.write(json ? String(decoding: line.json.bytes, as: UTF8.self) : line.text)
                }
            }
        }
        Console.error(
            "ivy worker: serving \(queues.map(\.rawValue).joined(separator: ", ")) on \(shared.redactedQueue) (notifier \(shared.redactedNotify)), concurrency \(concurrency); pid \(getpid())"
        )
        var failure: (any Error)?
        do {
            try await worker.run(untilSignal: [.terminate, .interrupt]) { signal in
                Console.error("ivy worker: \(signal) received; draining")
            }
        } catch {
            failure = error
        }
        await worker.close()
        await metrics?.close()
        // The events stream ends with the worker: the last events of the drain are printed too.
        await printer?.value
        if let dropped = await writer?.finish(), dropped > 0 {
            Console.error("ivy worker: \(dropped) event line(s) dropped: the reader did not keep up")
        }
        await commands.close()
        await connection.close()
        if let failure { throw failure }
        Console.error("ivy worker: stopped")
        return ExitStatus.success.rawValue
    }
}
