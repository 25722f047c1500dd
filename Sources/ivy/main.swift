// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy

let usage = """
    usage: ivy <command> [options]

    commands:
      demo     call testpackage.factorial(5) through the queue and show the flow
      call     call a task by name with JSON arguments; --wait prints its result
      queue    look at and manage a queue: size, peek, dead, requeue-dead, delete-dead, purge,
               pause, resume
      status   what became of calls, by id: waiting, running, retrying, succeeded, failed…
      cancel   cancel calls that have not started (and running ones, where workers allow)
      worker   serve the example tasks and --exec commands until SIGTERM/SIGINT
      bench    measure enqueue rate, round trips and latency
      dashboard  serve a web dashboard of queues, workers and dead letters, and /metrics
      encrypt  turn plaintext on stdin into a message token
      decrypt  turn a message token on stdin back into plaintext

    Run `ivy <command> --help` for a command's options. Backends are chosen by URL:
    --queue memory:// (the default), redis://HOST:PORT, ironmq://TOKEN@HOST/PROJECT_ID,
    ironmq+http://… (the local server), amqp://USER:PASSWORD@HOST[:PORT]/VHOST or amqps://…;
    --notify memory:// or redis://HOST:PORT, by default the queue's own server (IronMQ and
    AMQP carry no results: give --notify with them).
    $IVY_QUEUE_URL and $IVY_NOTIFY_URL set the defaults. Messages are encrypted when
    $MESSAGES_ENCRYPTION_KEY or --key-file gives a key. `ivy --version` prints the version.

    \(ExitStatus.help)
    """

/// Runs the command line and returns the process's exit status.
func runCommandLine() async -> Int32 {
    let commands: [String: (help: String, run: (inout CommandLineArguments) async throws -> Int32)] = [
        "demo": (DemoCommand.help, DemoCommand.run),
        "call": (CallCommand.help, CallCommand.run),
        "queue": (QueueCommand.help, QueueCommand.run),
        "status": (StatusCommand.statusHelp, StatusCommand.status),
        "cancel": (StatusCommand.cancelHelp, StatusCommand.cancel),
        "worker": (WorkerCommand.help, WorkerCommand.run),
        "bench": (BenchCommand.help, BenchCommand.run),
        "dashboard": (DashboardCommand.help, DashboardCommand.run),
        "encrypt": (CryptoCommands.encryptHelp, CryptoCommands.encrypt),
        "decrypt": (CryptoCommands.decryptHelp, CryptoCommands.decrypt),
    ]
    let command = CommandLine.arguments.dropFirst().first ?? "--help"
    var arguments = CommandLineArguments(CommandLine.arguments.dropFirst(2))
    if command == "--help" || command == "-h" || command == "help" {
        Console.out(usage)
        return ExitStatus.success.rawValue
    }
    if command == "--version" || command == "version" {
        Console.out("ivy \(IvyVersion.current)")
        return ExitStatus.success.rawValue
    }
    guard let entry = commands[command] else {
        Console.error("ivy: unknown command '\(command)'\n\n\(usage)")
        return ExitStatus.usage.rawValue
    }
    if arguments.wantsHelp() {
        Console.out(entry.help)
        return ExitStatus.success.rawValue
    }
    do {
        return try await entry.run(&arguments)
    } catch {
        let status = ExitStatus.of(error)
        let hint = status == .usage ? " (see `ivy \(command) --help`)" : ""
        Console.error("ivy \(command): \(error)\(hint)")
        return status.rawValue
    }
}

// Before any other thread starts, so that all of them inherit it: a parent may have blocked the
// termination signals, and `ivy demo` or `ivy bench` must still end on them as they would by
// default (`ivy worker` watches them through `IvyWorker.run(untilSignal:)`).
var terminationSignals = sigset_t()
sigemptyset(&terminationSignals)
sigaddset(&terminationSignals, SIGTERM)
sigaddset(&terminationSignals, SIGINT)
pthread_sigmask(SIG_UNBLOCK, &terminationSignals, nil)
// A closed stdout or stderr (`ivy … | head -1`) is a failed write, not a signal that ends the
// process mid-task; children still get the default (ChildProcess resets their signals).
signal(SIGPIPE, SIG_IGN)
exit(await runCommandLine())
