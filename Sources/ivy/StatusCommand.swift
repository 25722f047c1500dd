// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyCore

/// `ivy status ID…` and `ivy cancel ID…`: what became of calls, from the notifier's status
/// store, and cancelling them.
enum StatusCommand {
    static let statusHelp = """
        usage: ivy status ID [ID ...] [--notify URL | --queue URL] [--json] [--key-file PATH]

        Prints what became of each call: scheduled (and when it is due), waiting, running
        (attempt and worker), retrying (the last failure and when the next attempt is due),
        succeeded (its result), failed (the error), dead-lettered (why), cancelled, or unknown
        (never recorded, or forgotten after the status retention, a day by default). Statuses
        are kept by the notifier the workers use: give it with --notify redis://… (or a
        --queue on that Redis server). A sealed result needs the key (--key-file or
        $MESSAGES_ENCRYPTION_KEY).

        options:
        \(SharedOptions.help)
          --json             one JSON object per call: {"id","state","task","queue","attempt",
                             "worker","updated_at","run_at","reason","result","cancel_requested"}

        \(ExitStatus.help)
        """

    static let cancelHelp = """
        usage: ivy cancel ID [ID ...] [--notify URL | --queue URL] [--json] [--key-file PATH]

        Cancels each call that has not started (scheduled, waiting, or waiting for a retry): its
        caller gets a Cancelled error, and the worker that receives its message dead-letters it
        as cancelled instead of running it. A running call is marked: a worker started with
        --allow-cancel-running cancels it, and no worker retries it. Prints what happened to
        each. Cancelling a cancelled call again does no harm; exits 1 when a call has already
        ended otherwise (succeeded, failed, dead-lettered) or is unknown. Give the notifier the
        workers use, as for `ivy status`; with the callers' key, their Cancelled error is
        sealed as they expect.

        options:
        \(SharedOptions.help)
          --json             the status after the cancel, as `ivy status --json` prints it

        \(ExitStatus.help)
        """

    static func status(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        try await run(&arguments, command: "status") { client, id in try await client.status(of: id) }
    }

    static func cancel(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        try await run(&arguments, command: "cancel") { client, id in try await client.cancel(id) }
    }

    private static func run(
        _ arguments: inout CommandLineArguments, command: String,
        _ body: @escaping (IvyClient, String) async throws -> TaskStatus
    ) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let json = arguments.flag("--json")
        let ids = arguments.positionals()
        try arguments.finish()
        guard !ids.isEmpty else {
            throw CommandLineArguments.UsageError(description: "give the id of a call (`ivy call` prints it)")
        }
        if shared.notifiesInProcess {
            throw CommandLineArguments.UsageError(
                description:
                    "statuses are kept by the notifier the workers use: give it with --notify redis://… (memory:// lives inside one process)"
            )
        }
        let connection = try await shared.connect()
        var status = ExitStatus.success
        do {
            let client = try await shared.makeClient(
                TaskRegistry(), on: connection, resultTimeout: .seconds(30))
            for id in ids {
                let found: TaskStatus
                do { found = try await body(client, id) } catch {
                    await client.close()
                    throw error
                }
                if json {
                    Console.json(report(found))
                } else {
                    Console.out(command == "cancel" ? cancelText(found) : text(found))
                }
                if command == "cancel", !(found.state == .cancelled || found.state == .running) {
                    status = .taskFailed
                }
            }
            await client.close()
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return status.rawValue
    }

    /// A status for people: one line per fact, the state first.
    static func text(_ status: TaskStatus) -> String {
        var lines = ["\(Console.printable(status.id))  \(Console.printable(summary(status)))"]
        func add(_ label: String, _ value: String?) {
            if let value {
                lines.append(
                    "  \(label.padding(toLength: 8, withPad: " ", startingAt: 0)) \(Console.printable(value))"
                )
            }
        }
        add("task", status.taskName)
        add("queue", status.queue)
        add("updated", status.updatedAt.map(RFC3339.format))
        if status.state == .succeeded {
            add(
                "result",
                status.result?.text
                    ?? (status.notification == nil
                        ? "(none kept)"
                        : "(sealed: give the key with --key-file or $MESSAGES_ENCRYPTION_KEY)"))
        }
        return lines.joined(separator: "\n")
    }

    private static func summary(_ status: TaskStatus) -> String {
        let at = status.runAt.map(RFC3339.format) ?? "?"
        let reason = status.reason ?? "no reason recorded"
        switch status.state {
        case .scheduled: return "scheduled for \(at)"
        case .waiting: return "waiting in its queue"
        case .running:
            let cancel = status.cancelRequested ? "; a cancel was asked" : ""
            return "running (attempt \(status.attempt) on \(status.worker ?? "?")\(cancel))"
        case .retrying:
            return "retrying: attempt \(status.attempt) failed (\(reason)); the next is due at \(at)"
        case .succeeded: return "succeeded (attempt \(status.attempt) on \(status.worker ?? "?"))"
        case .failed: return "failed: \(reason) (attempt \(status.attempt))"
        case .deadLettered: return "dead-lettered: \(reason)"
        case .cancelled: return "cancelled: \(reason)"
        case .unknown: return "unknown (never recorded, or forgotten after the status retention)"
        }
    }

    private static func cancelText(_ status: TaskStatus) -> String {
        Console.printable(cancelSummary(status))
    }

    private static func cancelSummary(_ status: TaskStatus) -> String {
        switch status.state {
        case .cancelled: return "\(status.id)  cancelled"
        case .running:
            return
                "\(status.id)  running (attempt \(status.attempt) on \(status.worker ?? "?")): a cancel was asked; a worker started with --allow-cancel-running cancels it, and it is not retried"
        case .unknown: return "\(status.id)  unknown: nothing to cancel"
        default: return "\(status.id)  not cancelled: it is already \(status.state.rawValue)"
        }
    }

    static func report(_ status: TaskStatus) -> JSONObjectOutput {
        var object = JSONObjectOutput()
        object.add("id", status.id)
        object.add("state", status.state.rawValue)
        object.add("task", status.taskName)
        object.add("queue", status.queue)
        object.add("attempt", status.state == .unknown ? nil : status.attempt)
        object.add("worker", status.worker)
        object.add("updated_at", status.updatedAt.map(RFC3339.format))
        object.add("run_at", status.runAt.map(RFC3339.format))
        object.add("reason", status.reason)
        object.add("result", raw: status.result)
        object.add("cancel_requested", status.cancelRequested)
        return object
    }
}
