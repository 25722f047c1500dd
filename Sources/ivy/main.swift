// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy

let usage = """
    usage: ivy <command> [options]

    commands:
      demo     call testpackage.factorial(5) through the queue and show the flow
      worker   serve the example tasks and --exec commands until SIGTERM/SIGINT
      bench    measure enqueue rate, round trips and latency
      encrypt  turn plaintext on stdin into a message token
      decrypt  turn a message token on stdin back into plaintext

    Run `ivy <command> --help` for a command's options. Backends are chosen by URL:
    --queue memory:// (the default), redis://HOST:PORT, ironmq://TOKEN@HOST/PROJECT_ID,
    ironmq+http://… (the local server), amqp://USER:PASSWORD@HOST[:PORT]/VHOST or amqps://…;
    --notify memory:// or redis://HOST:PORT, by default the queue's own server (IronMQ and
    AMQP carry no results: give --notify with them).
    $IVY_QUEUE_URL and $IVY_NOTIFY_URL set the defaults. Messages are encrypted when
    $MESSAGES_ENCRYPTION_KEY or --key-file gives a key.
    """

/// Runs the command line and returns the process's exit status.
func runCommandLine() async -> Int32 {
    let commands: [String: (help: String, run: (inout CommandLineArguments) async throws -> Int32)] = [
        "demo": (DemoCommand.help, DemoCommand.run),
        "worker": (WorkerCommand.help, WorkerCommand.run),
        "bench": (BenchCommand.help, BenchCommand.run),
        "encrypt": (CryptoCommands.encryptHelp, CryptoCommands.encrypt),
        "decrypt": (CryptoCommands.decryptHelp, CryptoCommands.decrypt),
    ]
    let command = CommandLine.arguments.dropFirst().first ?? "--help"
    var arguments = CommandLineArguments(CommandLine.arguments.dropFirst(2))
    if command == "--help" || command == "-h" || command == "help" {
        Console.out(usage)
        return 0
    }
    guard let entry = commands[command] else {
        Console.error("ivy: unknown command '\(command)'\n\n\(usage)")
        return 2
    }
    if arguments.wantsHelp() {
        Console.out(entry.help)
        return 0
    }
    do {
        return try await entry.run(&arguments)
    } catch let error as CommandLineArguments.UsageError {
        Console.error("ivy \(command): \(error) (see `ivy \(command) --help`)")
        return 2
    } catch let error as IvyError
        where [.invalidConfiguration, .invalidURL, .unsupportedBackend].contains(error.code)
    {
        // Configuration is input like the flags: the same one line and exit status.
        Console.error("ivy \(command): \(error)")
        return 2
    } catch {
        Console.error("ivy \(command): \(error)")
        return 1
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
exit(await runCommandLine())
