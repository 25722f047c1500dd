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

    struct SizeReport: Encodable {
        var queue: String
        var ready, delayed, reserved, dead: Int
        /// False where the broker reports one count (IronMQ): then `ready` is all of them.
        var distinguishesStates: Bool
        /// Whether `ivy queue pause` holds it back; absent where the backend cannot pause.
        var paused: Bool?

        enum CodingKeys: String, CodingKey {
            case queue, ready, delayed, reserved, dead, paused
            case distinguishesStates = "distinguishes_states"
        }
    }

    struct MessageReport: Encodable {
        var id: String
        var deliveries: Int
        var body: Body
        var sealed: Bool
    }

    struct DeadLetterReport: Encodable {
        var id: String
        var reason: String
        /// Deliveries before it was dead-lettered: the attempts made.
        var attempts: Int
        var deadLetteredAt: String
        var body: Body
        var sealed: Bool

        enum CodingKeys: String, CodingKey {
            case id, reason, attempts, body, sealed
            case deadLetteredAt = "dead_lettered_at"
        }
    }

    struct ListReport<Item: Encodable>: Encodable {
        var queue: String
        var messages: [Item]
    }

    struct CountReport: Encodable {
        var queue: String
        var action: String
        var count: Int
        var missing: [String]?
    }

    struct PauseReport: Encodable {
        var queue: String
        var paused: Bool
    }

    /// A message body: its JSON as it is, or text where it is not JSON (`<sealed>` without the key).
    enum Body: Encodable {
        case json(RawJSON)
        case text(String)

        func encode(to encoder: any Encoder) throws {
            switch self {
            case .json(let value): try value.encode(to: encoder)
            case .text(let text):
                var container = encoder.singleValueContainer()
                try container.encode(text)
            }
        }

        var text: String {
            switch self {
            case .json(let value): value.text
            case .text(let text): text
            }
        }
    }

    // MARK: Actions

    func size() async throws {
        let size = try await backend.size(of: queue)
        let paused = try await (backend as? any PausableQueueBackend)?.isPaused(queue)
        let note = paused == true ? " (paused)" : ""
        if json {
            Console.json(
                SizeReport(
                    queue: queue.rawValue, ready: size.ready, delayed: size.delayed, reserved: size.reserved,
                    dead: size.dead, distinguishesStates: backend.distinguishesStates, paused: paused))
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
            let (body, sealed) = render(message.body)
            return MessageReport(
                id: message.messageID, deliveries: message.deliveryCount, body: body, sealed: sealed)
        }
        if json {
            Console.json(ListReport(queue: queue.rawValue, messages: messages))
            return
        }
        if messages.isEmpty { Console.out("\(queue): no ready message") }
        for message in messages {
            Console.out(
                "\(message.id)  deliveries \(message.deliveries)  \(Self.shortened(message.body.text))")
        }
    }

    func dead(count: Int) async throws {
        let letters = try await backend.deadLetters(of: queue, count: count).map { letter in
            let (body, sealed) = render(letter.body)
            return DeadLetterReport(
                id: letter.messageID, reason: letter.reason, attempts: letter.deliveryCount,
                deadLetteredAt: RFC3339.format(letter.deadLetteredAt), body: body, sealed: sealed)
        }
        if json {
            Console.json(ListReport(queue: queue.rawValue, messages: letters))
            return
        }
        if letters.isEmpty { Console.out("\(queue): no dead letter") }
        for letter in letters {
            Console.out(
                "\(letter.id)  \(letter.deadLetteredAt)  attempts \(letter.attempts)  reason: \(letter.reason)"
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
            for id in ids {
                if try await backend.requeueDeadLetter(of: queue, messageID: id) {
                    moved += 1
                } else {
                    missing.append(id)
                }
            }
        }
        if json {
            Console.json(
                CountReport(
                    queue: queue.rawValue, action: "requeue-dead", count: moved,
                    missing: ids.isEmpty ? nil : missing))
        } else {
            Console.out("\(queue): \(moved) dead letter(s) back in the queue")
        }
        if !missing.isEmpty {
            throw NotFound(
                description: "no dead letter of queue \(queue) has the id \(missing.joined(separator: ", "))")
        }
    }

    func purge(deadLetters: Bool) async throws {
        let count = try await deadLetters ? backend.purgeDeadLetters(of: queue) : backend.purge(queue)
        let what = deadLetters ? "dead letter(s)" : "message(s)"
        if json {
            Console.json(
                CountReport(queue: queue.rawValue, action: deadLetters ? "purge-dead" : "purge", count: count)
            )
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
            Console.json(PauseReport(queue: queue.rawValue, paused: paused))
        } else {
            Console.out(
                paused
                    ? "\(queue): paused; workers take nothing from it until `ivy queue resume \(queue)`"
                    : "\(queue): resumed")
        }
    }

    // MARK: Bodies

    /// The body as JSON where it is, decrypted where it is sealed and the key is at hand.
    private func render(_ body: [UInt8]) -> (Body, sealed: Bool) {
        guard body.first == UInt8(ascii: "$") else { return (Self.readable(body), false) }
        guard let encryption else { return (.text("<sealed>"), true) }
        guard let plaintext = try? encryption.plaintext(of: body) else {
            return (.text("<sealed: the key given does not open it>"), true)
        }
        return (Self.readable(plaintext), true)
    }

    private static func readable(_ bytes: [UInt8]) -> Body {
        if let value = try? RawJSON(validating: bytes) { return .json(value) }
        return .text(String(decoding: bytes, as: UTF8.self))
    }

    /// One line of at most 200 characters, for people; `--json` has the whole body.
    private static func shortened(_ text: String) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count <= 200 ? line : line.prefix(199) + "…"
    }
}
