// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy

/// `ivy worker --exec NAME=COMMAND`: tasks served by running a command (``CommandRunner``),
/// with `--exec-attempts` and `--exec-timeout` for all of them and per-task settings in
/// brackets after the name.
struct ExecOptions {
    /// One `--exec` task.
    struct Spec {
        var name: String
        var command: String
        var queue: QueueName
        var attempts: Int
        var timeout: Duration

        /// Retries wait about 1 s, 2 s, 4 s … (at most 5 min), with jitter.
        var retry: RetryPolicy {
            .exponential(base: .seconds(1), maximum: .seconds(300), maxAttempts: attempts)
        }
    }

    var specs: [Spec]

    static let help = """
          --exec NAME=COMMAND   serve task NAME by running `/bin/sh -c COMMAND` (repeatable):
                             the call's arguments arrive on stdin as one JSON array, and the one
                             JSON value it prints on stdout is the result (nothing: null). A
                             non-zero exit fails the call with the last line of stderr. It gets
                             the worker's environment without MESSAGES_ENCRYPTION_KEY, plus
                             IVY_TASK_ID, IVY_TASK_NAME and IVY_ATTEMPT (from 1). Its queue is
                             NAME's first dotted segment; the worker serves it besides --queues.
                             Settings for one task go in brackets:
                             --exec 'NAME[timeout=SECONDS,attempts=N,queue=Q]=COMMAND'
          --exec-attempts N  attempts of each --exec task, the first included; retries wait
                             about 1 s, 2 s, 4 s … up to 5 min (default 1: no retry)
          --exec-timeout SECONDS  time limit of an attempt, after which the command's whole
                             process group gets SIGTERM, and SIGKILL 2 s later (default 60)
        """

    /// The longest timeout and the most attempts a task can have.
    private static let timeoutRange = Duration.milliseconds(1)...RetryPolicy.longestDelay
    private static let attemptRange = 1...1_000_000

    /// Parses the --exec options; `taken` are the names of the worker's other tasks, which no
    /// --exec task may reuse.
    init(_ arguments: inout CommandLineArguments, besides taken: [String]) throws(CommandLineArguments
        .UsageError)
    {
        let attempts = try arguments.integer("--exec-attempts", default: 1, range: Self.attemptRange)
        let timeout = try arguments.seconds("--exec-timeout", default: .seconds(60), range: Self.timeoutRange)
        specs = []
        for text in try arguments.values("--exec") {
            let spec = try Self.parse(text, attempts: attempts, timeout: timeout)
            guard !specs.contains(where: { $0.name == spec.name }) else {
                throw Self.usage(spec.name, "given twice")
            }
            guard !taken.contains(spec.name) else {
                throw Self.usage(spec.name, "a task of that name is already served")
            }
            specs.append(spec)
        }
    }

    /// `queues` and then the --exec tasks' queues that are not among them.
    func queues(adding queues: [QueueName]) -> [QueueName] {
        var all = queues
        for spec in specs where !all.contains(spec.queue) { all.append(spec.queue) }
        return all
    }

    /// Registers the --exec tasks beside the others in `registry`; their commands run in the
    /// returned runner, which the caller closes after the worker.
    func register(in registry: TaskRegistry) throws(CommandLineArguments.UsageError) -> CommandRunner {
        let runner = CommandRunner()
        for spec in specs {
            do {
                try registry.registerUntyped(
                    spec.name, queue: spec.queue, retry: spec.retry, timeout: spec.timeout
                ) { [command = spec.command] arguments in
                    try await runner.run(command, arguments: arguments)
                }
            } catch {
                let why =
                    error.code == .duplicateTask
                    ? "a task of that name is already served" : Self.detail(error)
                throw Self.usage(spec.name, why)
            }
        }
        return runner
    }

    /// `NAME=COMMAND` or `NAME[KEY=VALUE,…]=COMMAND`; the name ends at the first `[` or `=`,
    /// which no task name contains, so the command may hold both.
    private static func parse(_ text: String, attempts: Int, timeout: Duration)
        throws(CommandLineArguments.UsageError) -> Spec
    {
        guard let nameEnd = text.firstIndex(where: { $0 == "[" || $0 == "=" }) else {
            throw usage(text, "expected NAME=COMMAND")
        }
        let name = String(text[..<nameEnd])
        var rest = text[nameEnd...]
        var settings: [Substring] = []
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { throw usage(name, "'[' without ']'") }
            settings = rest[rest.index(after: rest.startIndex)..<close].split(
                separator: ",", omittingEmptySubsequences: false)
            rest = rest[rest.index(after: close)...]
        }
        guard rest.first == "=" else { throw usage(name, "expected '=' and a command after the name") }
        let command = String(rest.dropFirst())
        guard command.contains(where: { !$0.isWhitespace }) else { throw usage(name, "the command is empty") }

        var (attempts, timeout, queue) = (attempts, timeout, CallCommand.defaultQueue(of: name))
        var seen: Set<String> = []
        for setting in settings {
            let parts = setting.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            guard parts.count == 2, seen.insert(key).inserted else {
                throw usage(name, "expected [timeout=SECONDS,attempts=N,queue=QUEUE], each at most once")
            }
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            let subject = "--exec \(shown(name)): \(key)"
            switch key {
            case "timeout":
                timeout = try CommandLineArguments.seconds(value, for: subject, range: timeoutRange)
            case "attempts":
                attempts = try CommandLineArguments.integer(value, for: subject, range: attemptRange)
            case "queue": queue = value
            default: throw usage(name, "unknown setting \(shown(key)) (timeout, attempts or queue)")
            }
        }
        do {
            // The name first, which UntypedTask checks (its queue here is a stand-in): a bad name
            // makes a bad default queue too, and the name's message is the clearer one.
            _ = try UntypedTask(name: name, options: TaskOptions(queue: "stand-in"))
            return Spec(
                name: name, command: command, queue: try QueueName(queue), attempts: attempts,
                timeout: timeout)
        } catch {
            throw usage(name, detail(error))
        }
    }

    /// A usage error about the task `name` (or the --exec value that has none).
    private static func usage(_ name: String, _ problem: String) -> CommandLineArguments.UsageError {
        let problem = problem.split(whereSeparator: \.isNewline).joined(separator: " ")
        return CommandLineArguments.UsageError(description: "--exec \(shown(name)): \(problem)")
    }

    private static func detail(_ error: IvyError) -> String {
        error.detail ?? "\(error)"
    }

    /// Text from the command line, quoted on one short line (control characters escaped), for an
    /// error message.
    private static func shown(_ text: some StringProtocol) -> String {
        String(text.prefix(40)).debugDescription + (text.count > 40 ? "…" : "")
    }
}
