// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy

/// `ivy call`: one call of a task by name, from a shell or a script in any language.
enum CallCommand {
    static let help = """
        usage: ivy call NAME [JSON_ARG ...] [--queue URL] [--notify URL] [--task-queue QUEUE]
                        [--wait] [--timeout SECONDS] [--json] [--key-file PATH]

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
          --timeout SECONDS  how long to wait for the result (default 30)
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
                            task, values, client: client, backend: connection.backend, shared: shared,
                            json: json)
                        : enqueue(task, values, client: client, json: json))
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

    private static func enqueue(_ task: UntypedTask, _ values: [RawJSON], client: IvyClient, json: Bool)
        async throws -> Int32
    {
        let id = try await client.enqueue(task, arguments: values)
        if json {
            Console.json(Report(id: id, task: task.name, queue: task.options.queue.rawValue).json)
        } else {
            Console.out(id)
        }
        return ExitStatus.success.rawValue
    }

    private static func callAndWait(
        _ task: UntypedTask, _ values: [RawJSON], client: IvyClient, backend: any QueueBackend,
        shared: SharedOptions, json: Bool
    ) async throws -> Int32 {
        let pending = try await client.delayedCall(task, arguments: values)
        let hint = UnansweredCallHint(
            command: "call", queue: task.options.queue, backend: backend,
            endpoint: shared.redactedQueue
        ).watch()
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

    /// The queue alone: a call that does not wait needs no notifier (the worker publishes its
    /// outcome on the base channel, where nobody in this process listens).
    private static func backendOnly(_ shared: SharedOptions) async throws -> IvyConnection {
        IvyConnection(
            backend: try await IvyConnection.backend(.url(shared.queueURL), logger: shared.logger),
            notifier: MemoryNotifier())
    }
}
