// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyCore

/// The `ivy queue` actions on one queue, printed for people or, with `--json`, as one object.
struct QueueView {
    let queue: QueueName
    let backend: any InspectableQueueBackend
    let encryption: MessageEncryption?
    let json: Bool

    /// Something the operator named is not there: exit status 1, like a task that failed.
    struct NotFound: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: Reports (`--json`)

    /// A listed message, as `peek` and `dead` show it.
    struct Listed {
        var id: String
        var deliveries: Int
        var body: ReadableBody
        /// For dead letters: why, and when.
        var reason: String?
        var deadLetteredAt: String?

        var json: JSONObjectOutput {
            var object = JSONObjectOutput()
            object.add("id", id)
            if let reason {
                object.add("reason", reason)
                // Deliveries before it was dead-lettered: the attempts made.
                object.add("attempts", deliveries)
                object.add("dead_lettered_at", deadLetteredAt)
            } else {
                object.add("deliveries", deliveries)
            }
            switch body.content {
            case .json(let value): object.add("body", raw: value)
            case .text(let text): object.add("body", text)
            }
            object.add("sealed", body.sealed)
            return object
        }
    }

    private func report(_ fill: (inout JSONObjectOutput) -> Void) {
        var object = JSONObjectOutput()
        object.add("queue", queue.rawValue)
        fill(&object)
        Console.json(object)
    }

    // MARK: Actions

    func size() async throws {
        let size = try await backend.size(of: queue)
        let paused = try await (backend as? any PausableQueueBackend)?.isPaused(queue)
        let note = paused == true ? " (paused)" : ""
        if json {
            report {
                $0.add("ready", size.ready)
                $0.add("delayed", size.delayed)
                $0.add("reserved", size.reserved)
                $0.add("dead", size.dead)
                // False where the broker reports one count (IronMQ): then `ready` is all of them.
                $0.add("distinguishes_states", backend.distinguishesStates)
                // Absent where the backend cannot pause.
                $0.add("paused", paused)
            }
        } else if backend.distinguishesStates {
            Console.out("\(queue)\(note): \(size)")
        } else {
            Console.out(
                "\(queue)\(note): \(size.ready) messages (ready, delayed and reserved: this broker counts them together), dead \(size.dead)"
            )
        }
    }

    func peek(count: Int) async throws {
        let messages = try await backend.peek(queue, count: count).map { message in
            Listed(
                id: message.messageID, deliveries: message.deliveryCount,
                body: ReadableBody(message.body, encryption: encryption))
        }
        if json {
            report { $0.add("messages", messages.map(\.json)) }
            return
        }
        if messages.isEmpty { Console.out("\(queue): no ready message") }
        for message in messages {
            Console.out(
                "\(Console.printable(message.id))  deliveries \(message.deliveries)  \(Self.shortened(message.body.text))"
            )
        }
    }

    func dead(count: Int) async throws {
        let letters = try await backend.deadLetters(of: queue, count: count).map { letter in
            Listed(
                id: letter.messageID, deliveries: letter.deliveryCount,
                body: ReadableBody(letter.body, encryption: encryption),
                reason: letter.reason, deadLetteredAt: RFC3339.format(letter.deadLetteredAt))
        }
        if json {
            report { $0.add("messages", letters.map(\.json)) }
            return
        }
        if letters.isEmpty { Console.out("\(queue): no dead letter") }
        for letter in letters {
            Console.out(
                "\(Console.printable(letter.id))  \(letter.deadLetteredAt ?? "")  attempts \(letter.deliveries)  reason: \(Self.shortened(letter.reason ?? ""))"
            )
            Console.out("    \(Self.shortened(letter.body.text))")
        }
    }

    func requeueDead(count: Int, ids: [String]) async throws {
        var moved = 0
        var missing: [String] = []
        if ids.isEmpty {
            moved = try await backend.requeueDeadLetters(of: queue, count: count)
        } else {
            (moved, missing) = try await eachDeadLetter(ids) {
                try await backend.requeueDeadLetter(of: queue, messageID: $0)
            }
        }
        if json {
            report {
                $0.add("action", "requeue-dead")
                $0.add("count", moved)
                $0.add("missing", strings: ids.isEmpty ? nil : missing)
            }
        } else {
            Console.out("\(queue): \(moved) dead letter(s) back in the queue")
        }
        try Self.check(missing, of: queue)
    }

    func deleteDead(ids: [String]) async throws {
        let (deleted, missing) = try await eachDeadLetter(ids) {
            try await backend.deleteDeadLetter(of: queue, messageID: $0)
        }
        if json {
            report {
                $0.add("action", "delete-dead")
                $0.add("count", deleted)
                $0.add("missing", strings: missing)
            }
        } else {
            Console.out("\(queue): \(deleted) dead letter(s) deleted")
        }
        try Self.check(missing, of: queue)
    }

    /// Does `act` to the dead letter of each id, in order; returns how many it was done to and
    /// the ids of those not found.
    private func eachDeadLetter(_ ids: [String], _ act: (String) async throws -> Bool) async throws
        -> (done: Int, missing: [String])
    {
        var done = 0
        var missing: [String] = []
        for id in ids {
            if try await act(id) { done += 1 } else { missing.append(id) }
        }
        return (done, missing)
    }

    /// Throws ``NotFound`` naming the ids no dead letter had, after the report of what was done.
    private static func check(_ missing: [String], of queue: QueueName) throws {
        if !missing.isEmpty {
            throw NotFound(
                description:
                    "no dead letter of queue \(queue) has the id \(missing.map(Console.printable).joined(separator: ", "))"
            )
        }
    }

    func purge(deadLetters: Bool) async throws {
        let count = try await deadLetters ? backend.purgeDeadLetters(of: queue) : backend.purge(queue)
        let what = deadLetters ? "dead letter(s)" : "message(s)"
        if json {
            report {
                $0.add("action", deadLetters ? "purge-dead" : "purge")
                $0.add("count", count)
            }
        } else {
            Console.out("\(queue): \(count) \(what) deleted")
        }
    }

    func setPaused(_ paused: Bool) async throws {
        guard let pausable = backend as? any PausableQueueBackend else {
            throw IvyError(
                .unsupportedBackend, endpoint: backend.endpoint, detail: "this backend cannot pause a queue")
        }
        if paused { try await pausable.pause(queue) } else { try await pausable.resume(queue) }
        if json {
            report { $0.add("paused", paused) }
        } else {
            Console.out(
                paused
                    ? "\(queue): paused; workers take nothing from it until `ivy queue resume \(queue)`"
                    : "\(queue): resumed")
        }
    }

    // MARK: Bodies

    /// One line of at most 200 characters, for people; `--json` has the whole body.
    private static func shortened(_ text: String) -> String {
        let line = Console.printable(text)
        return line.count <= 200 ? line : line.prefix(199) + "…"
    }

}
