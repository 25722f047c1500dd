// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyCore

/// `ivy call`: one call of a task by name, from a shell or a script in any language.
enum CallCommand {
    static let help = """
        usage: ivy call NAME [JSON_ARG ...] [--queue URL] [--notify URL] [--task-queue QUEUE]
                        [--wait] [--timeout SECONDS] [--json] [--key-file PATH]
                        [--in DURATION | --at TIME]

        Sends a call of task NAME with the given arguments, each one JSON value: 5, '"text"',
        '[1,2]', '{"a":1}' (quote strings twice: once for JSON, once for the shell). A worker
        with NAME registered runs it. Without --wait it prints the task id once the queue has
        the call; with --wait it prints the result as JSON on stdout, or the remote error on
        stderr and exits 1. A call no worker has taken after a few seconds gets a hint on
        stderr while it keeps waiting. Arguments after `--` are taken as they are. On memory://
        (the default) the example tasks run in this process and the call is awaited.

        options:
        \(SharedOptions.help)
          --task-queue QUEUE the queue the task travels on (default: NAME's first segment, as
                             testpackage for testpackage.factorial)
          --wait             wait for the result and print it
          --timeout SECONDS  how long to wait for the result (default 30), counted from when
                             the call may run (with --in or --at, from then)
          --in DURATION      run the call no sooner than DURATION from now: seconds (30, 1.5)
                             or a number with a unit ms, s, m, h or d (500ms, 30s, 5m, 2h, 1d);
                             at most 366 days
          --at TIME          run the call no sooner than TIME, an RFC 3339 time with a zone
                             (2026-12-03T16:00:00Z, 2026-12-03T17:00:00+01:00)
          --json             print one JSON object: {"id","task","queue"} and, with --wait,
                             "result" or "error" {"name","message","attempt"}

        \(ExitStatus.help)
        """

    /// What `--json` prints.
    struct Report {
        struct Failure {
            var name: String
            var message: String
            var attempt: Int
        }
        var id: String
        var task: String
        var queue: String
        var result: RawJSON?
        var error: Failure?

        var json: JSONObjectOutput {
            var object = JSONObjectOutput()
            object.add("id", id)
            object.add("task", task)
            object.add("queue", queue)
            object.add("result", raw: result)
            if let error {
                var failure = JSONObjectOutput()
                failure.add("name", error.name)
                failure.add("message", error.message)
                failure.add("attempt", error.attempt)
                object.add("error", failure)
            }
            return object
        }
    }

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let taskQueue = try arguments.option("--task-queue")
        let waitRequested = arguments.flag("--wait")
        let json = arguments.flag("--json")
        let timeout = try arguments.seconds(
            "--timeout", default: .seconds(30), range: .milliseconds(1)...(.seconds(86_400)))
        let start = try startTime(in: arguments.option("--in"), at: arguments.option("--at"))
        var positionals = arguments.positionals()
        try arguments.finish()
        guard !positionals.isEmpty else {
            throw CommandLineArguments.UsageError(description: "name the task to call, as package.function")
        }
        let name = positionals.removeFirst()
        let task = try untypedTask(name, queue: taskQueue)
        var values: [RawJSON] = []
        for (index, text) in positionals.enumerated() {
            do { values.append(try RawJSON(validating: text)) } catch {
                throw CommandLineArguments.UsageError(
                    description:
                        "argument \(index + 1) is not one JSON value (\(error.detail ?? "invalid")); a string is written '\"text\"'"
                )
            }
        }
        // memory:// lives inside this process: the example tasks run here, and the call is
        // awaited, or it would be lost when the process ends.
        let inProcess = shared.isInProcess
        if inProcess {
            Console.error(
                "ivy call: note: memory:// lives inside this process: the example tasks run here and the call is awaited; use a broker URL to reach other workers"
            )
        } else if waitRequested && shared.notifiesInProcess {
            throw CommandLineArguments.UsageError(
                description:
                    "--wait needs a notifier the workers share (redis://…): memory:// lives inside this process"
            )
        }
        let wait = waitRequested || inProcess

        let connection = try await wait ? shared.connect() : backendOnly(shared)
        let outcome: Result<Int32, any Error>
        var serving: (worker: IvyWorker, run: Task<Void, any Error>)?
        do {
            if inProcess {
                let worker = try shared.makeWorker(
                    shared.registry().0, on: connection,
                    options: WorkerOptions(queues: [task.options.queue], concurrency: 4))
                serving = (worker, Task { try await worker.run() })
            }
            let client = try await shared.makeClient(TaskRegistry(), on: connection, resultTimeout: timeout)
            do {
                outcome = .success(
                    try await wait
                        ? callAndWait(
                            task, values, start: start, client: client, backend: connection.backend,
                            shared: shared, json: json)
                        : enqueue(task, values, start: start, client: client, json: json))
            } catch {
                outcome = .failure(error)
            }
            await client.close()
        } catch {
            outcome = .failure(error)
        }
        if let serving {
            serving.run.cancel()
            _ = try? await serving.run.value
            await serving.worker.close()
        }
        await connection.close()
        return try outcome.get()
    }

    private static func enqueue(
        _ task: UntypedTask, _ values: [RawJSON], start: StartTime?, client: IvyClient, json: Bool
    ) async throws -> Int32 {
        let id = try await client.enqueue(task, arguments: values, after: start?.after, at: start?.at)
        if json {
            Console.json(Report(id: id, task: task.name, queue: task.options.queue.rawValue).json)
        } else {
            Console.out(id)
        }
        return ExitStatus.success.rawValue
    }

    private static func callAndWait(
        _ task: UntypedTask, _ values: [RawJSON], start: StartTime?, client: IvyClient,
        backend: any QueueBackend, shared: SharedOptions, json: Bool
    ) async throws -> Int32 {
        let pending = try await client.delayedCall(
            task, arguments: values, after: start?.after, at: start?.at)
        let hint = UnansweredCallHint(
            command: "call", queue: task.options.queue, backend: backend,
            endpoint: shared.redactedQueue
        ).watch(after: start?.delay ?? .zero)
        defer { hint.cancel() }
        var report = Report(id: pending.taskID, task: task.name, queue: task.options.queue.rawValue)
        do {
            let value = try await pending.value
            report.result = value
            if json { Console.json(report.json) } else { Console.out(value.text) }
            return ExitStatus.success.rawValue
        } catch let error as RemoteTaskError {
            report.error = .init(name: error.name, message: error.message, attempt: error.attempt)
            if json { Console.json(report.json) }
            Console.error("ivy call: \(error)")
            return ExitStatus.taskFailed.rawValue
        } catch let error as IvyError {
            // No result in time, or one that could not be read: scripts still get an object.
            report.error = .init(name: "\(error.code)", message: "\(error)", attempt: 0)
            if json { Console.json(report.json) }
            throw error
        }
    }

    /// When the call may run: `--in` or `--at`, not both.
    struct StartTime {
        var after: Duration?
        var at: Date?

        /// How long from now the call waits.
        var delay: Duration {
            after ?? at.map { .milliseconds(Int64(max(0, $0.timeIntervalSinceNow) * 1000)) } ?? .zero
        }
    }

    static func startTime(in inText: String?, at atText: String?) throws(CommandLineArguments.UsageError)
        -> StartTime?
    {
        switch (inText, atText) {
        case (nil, nil):
            return nil
        case (.some, .some):
            throw CommandLineArguments.UsageError(description: "give --in or --at, not both")
        case (let text?, nil):
            return StartTime(after: try duration(text, for: "--in"), at: nil)
        case (nil, let text?):
            guard let date = RFC3339.parse(text) else {
                throw CommandLineArguments.UsageError(
                    description: "--at takes an RFC 3339 time with a zone, such as 2026-12-03T16:00:00Z")
            }
            guard date.timeIntervalSinceNow <= 366 * 86_400 else {
                throw CommandLineArguments.UsageError(description: "--at is more than 366 days ahead")
            }
            return StartTime(after: nil, at: date)
        }
    }

    /// `30`, `1.5`, `500ms`, `30s`, `5m`, `2h`, `1d`: from zero to 366 days.
    static func duration(_ text: String, for name: String) throws(CommandLineArguments.UsageError) -> Duration
    {
        let units: [(suffix: String, seconds: Double)] = [
            ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400),
        ]
        var number = Substring(text)
        var scale = 1.0
        if let unit = units.first(where: {
            text.hasSuffix($0.suffix) && !(($0.suffix == "s") && text.hasSuffix("ms"))
        }) {
            number = number.dropLast(unit.suffix.count)
            scale = unit.seconds
        }
        guard let value = Double(number), value >= 0, value * scale <= 366 * 86_400 else {
            throw CommandLineArguments.UsageError(
                description:
                    "\(name) takes a duration from 0 to 366 days: seconds, or a number with ms, s, m, h or d (30s, 5m)"
            )
        }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    /// The queue a task travels on when nothing says otherwise, in `call` and `worker --exec`
    /// alike: its name's first dotted segment (`testpackage` for `testpackage.factorial`).
    static func defaultQueue(of name: String) -> String {
        String(name.prefix { $0 != "." })
    }

    /// A handle on `name`, on `queue` or the name's first segment.
    static func untypedTask(_ name: String, queue: String?) throws -> UntypedTask {
        let queueText = queue ?? defaultQueue(of: name)
        do {
            return try UntypedTask(name: name, options: TaskOptions(queue: QueueName(queueText)))
        } catch {
            throw CommandLineArguments.UsageError(description: error.detail ?? "\(error)")
        }
    }

    /// The queue alone, for a call that does not wait (the worker publishes its outcome on the
    /// base channel, where nobody in this process listens); with the notifier when one is given
    /// or the queue's server is one, so that the call's status is recorded where `ivy status`
    /// finds it.
    private static func backendOnly(_ shared: SharedOptions) async throws -> IvyConnection {
        let queue = shared.queueURL.lowercased()
        if shared.notifyURL != nil || queue.hasPrefix("redis:") || queue.hasPrefix("rediss:") {
            return try await shared.connect()
        }
        return IvyConnection(
            backend: try await IvyConnection.backend(.url(shared.queueURL), logger: shared.logger),
            notifier: MemoryNotifier())
    }
}
