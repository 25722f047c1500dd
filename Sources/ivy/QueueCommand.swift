// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy

/// `ivy queue`: what an operator looks at and fixes from a shell, on every backend.
enum QueueCommand {
    static let help = """
        usage: ivy queue ACTION NAME [--queue URL] [-n N] [--json] [--key-file PATH]

        actions:
          size          messages ready, delayed, reserved and dead (IronMQ reports one count,
                        shown as ready)
          peek          the next N ready messages, without taking them (RabbitMQ can only look
                        by taking and giving back: a peek there may reorder them)
          dead          the oldest N dead letters, with their reasons and attempts
          requeue-dead  move dead letters back to the queue: all of them, the oldest N with -n,
                        or the ones named with --id ID (repeatable)
          delete-dead   delete the dead letters named with --id ID (repeatable), leaving the
                        others (purge --dead deletes them all)
          purge         delete every ready and delayed message (with --dead: the dead letters
                        instead); asks for --yes
          pause         no worker reserves from the queue until it is resumed (running tasks
                        finish); the state lives on the broker, so every worker sees it
          resume        undo pause

        Bodies sealed with a key are shown decrypted when the key is given (--key-file or
        $MESSAGES_ENCRYPTION_KEY), else as <sealed>.

        options:
          --queue URL        queue backend (default: $IVY_QUEUE_URL, else memory://, which is
                             empty: it lives inside one process)
          -n N               how many messages peek, dead and requeue-dead handle (default 10 for
                             peek and dead, all for requeue-dead)
          --id ID            requeue-dead, delete-dead: the dead letter with this message id
                             (repeatable)
          --dead             purge: the dead letters instead of the live messages
          --yes              purge: really delete
          --json             print one JSON object on stdout
          -v, --verbose      log at debug level on stderr
        \(KeyOptions.help)

        \(ExitStatus.help)
        """

    enum Action: String, CaseIterable {
        case size, peek, dead
        case requeueDead = "requeue-dead"
        case deleteDead = "delete-dead"
        case purge, pause, resume
    }

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let count = try arguments.integer("-n", default: 0, range: 1...1_000_000)
        let json = arguments.flag("--json")
        let confirmed = arguments.flag("--yes")
        let deadOnly = arguments.flag("--dead")
        let ids = try arguments.values("--id")
        var positionals = arguments.positionals()
        try arguments.finish()
        guard positionals.count == 2 else {
            throw CommandLineArguments.UsageError(
                description:
                    "give an action and a queue name: ivy queue \(Action.allCases.map(\.rawValue).joined(separator: "|")) NAME"
            )
        }
        let actionName = positionals.removeFirst()
        guard let action = Action(rawValue: actionName) else {
            throw CommandLineArguments.UsageError(
                description:
                    "unknown action '\(actionName)': one of \(Action.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let queue: QueueName
        do { queue = try QueueName(positionals[0]) } catch {
            throw CommandLineArguments.UsageError(description: error.detail ?? "\(error)")
        }
        if !ids.isEmpty && action != .requeueDead && action != .deleteDead {
            throw CommandLineArguments.UsageError(description: "--id is for requeue-dead and delete-dead")
        }
        if action == .deleteDead && (ids.isEmpty || count > 0) {
            throw CommandLineArguments.UsageError(
                description:
                    "delete-dead takes the ids to delete, each with --id ID (purge --dead deletes every dead letter)"
            )
        }
        if !ids.isEmpty && count > 0 {
            throw CommandLineArguments.UsageError(description: "requeue-dead takes --id or -n, not both")
        }
        if deadOnly && action != .purge {
            throw CommandLineArguments.UsageError(description: "--dead is for purge")
        }
        if action == .purge && !confirmed {
            let what = deadOnly ? "every dead letter" : "every ready and delayed message"
            throw CommandLineArguments.UsageError(
                description: "purge deletes \(what) of queue '\(queue)' on \(shared.redactedQueue): add --yes"
            )
        }
        if shared.isInProcess {
            Console.error("ivy queue: note: memory:// lives inside one process; this one holds nothing")
        }

        let backend = try await IvyConnection.backend(.url(shared.queueURL), logger: shared.logger)
        let outcome: Result<Void, any Error>
        do {
            guard let inspectable = backend as? any InspectableQueueBackend else {
                throw IvyError(
                    .unsupportedBackend, endpoint: backend.endpoint,
                    detail: "this backend cannot be inspected")
            }
            let view = QueueView(
                queue: queue, backend: inspectable, encryption: shared.keys.encryption, json: json)
            switch action {
            case .size: try await view.size()
            case .peek: try await view.peek(count: count == 0 ? 10 : count)
            case .dead: try await view.dead(count: count == 0 ? 10 : count)
            case .requeueDead: try await view.requeueDead(count: count == 0 ? Int.max : count, ids: ids)
            case .deleteDead: try await view.deleteDead(ids: ids)
            case .purge: try await view.purge(deadLetters: deadOnly)
            case .pause, .resume: try await view.setPaused(action == .pause)
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await backend.close()
        try outcome.get()
        return ExitStatus.success.rawValue
    }
}
