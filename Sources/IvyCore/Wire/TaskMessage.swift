// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// One task call as it travels on a queue (PROTOCOL.md, "Task message").
///
/// `name`, `options` and `args` are node ivy's keys. `args` and `options` stay raw JSON text:
/// the worker decodes `args` with the task's own parameter types, and `options` is carried
/// through untouched for interoperability.
public struct TaskMessage: Sendable, Hashable {
    /// The registered task name, such as `testpackage.factorial`.
    public var name: String
    /// ivy's `options` object, as raw JSON text (`{}` when empty).
    public var options: [UInt8]
    /// The call's arguments, as a raw JSON array.
    public var args: [UInt8]
    /// The task id; node ivy messages have none, and the broker's message id stands in.
    public var id: String?
    /// The notification channel the result goes to; absent in node ivy messages.
    public var notify: ChannelName?
    /// The attempt this message starts at (1 for a fresh call).
    public var attempt: Int
    /// When the producer created the message.
    public var createdAt: Date?
    /// When the caller stops waiting; a worker dead-letters the message after this instant.
    public var deadline: Date?
    /// The earliest time the call may run (a call made with `after:` or `at:`); a worker that
    /// receives the message sooner puts it back until then.
    public var eta: Date?

    public init(
        name: String, args: [UInt8], options: [UInt8] = Array("{}".utf8), id: String? = nil,
        notify: ChannelName? = nil, attempt: Int = 1, createdAt: Date? = nil, deadline: Date? = nil,
        eta: Date? = nil
    ) {
        self.name = name
        self.options = options
        self.args = args
        self.id = id
        self.notify = notify
        self.attempt = attempt
        self.createdAt = createdAt
        self.deadline = deadline
        self.eta = eta
    }

    /// The message as UTF-8 JSON, keys in the order PROTOCOL.md lists them.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter(capacity: 160 + args.count + options.count)
        writer.raw("{")
        writer.key("name", first: true)
        writer.string(name)
        writer.key("options")
        writer.raw(options)
        writer.key("args")
        writer.raw(args)
        if let id {
            writer.key("id")
            writer.string(id)
        }
        if let notify {
            writer.key("notify")
            writer.string(notify.rawValue)
        }
        writer.key("attempt")
        writer.integer(attempt)
        if let createdAt {
            writer.key("created_at")
            writer.timestamp(createdAt)
        }
        if let deadline {
            writer.key("deadline")
            writer.timestamp(deadline)
        }
        if let eta {
            writer.key("eta")
            writer.timestamp(eta)
        }
        writer.raw("}")
        return writer.bytes
    }

    /// Parses a message body, accepting node ivy's messages (no `id`, `notify` or `attempt`).
    ///
    /// - Throws: ``IvyError`` with code ``IvyError/Code/malformedMessage`` and a reason that
    ///   quotes no part of the body.
    public init(decoding bytes: [UInt8]) throws(IvyError) {
        do {
            let object = try JSONObjectReader(bytes)
            guard let name = try object.string("name"), !name.isEmpty else {
                throw IvyError(.malformedMessage, detail: "missing \"name\"")
            }
            guard let args = object.raw("args"), args.first == UInt8(ascii: "[") else {
                throw IvyError(
                    .malformedMessage, taskName: name, detail: "\"args\" is missing or not an array")
            }
            var options = Array("{}".utf8)
            if let raw = object.raw("options"), !object.isNull("options") {
                guard raw.first == UInt8(ascii: "{") else {
                    throw IvyError(.malformedMessage, taskName: name, detail: "\"options\" is not an object")
                }
                options = Array(raw)
            }
            let attempt = try object.integer("attempt") ?? 1
            guard attempt >= 1 else {
                throw IvyError(.malformedMessage, taskName: name, detail: "\"attempt\" must be at least 1")
            }
            var notify: ChannelName?
            if let channel = try object.string("notify") {
                guard let valid = try? ChannelName(channel) else {
                    throw IvyError(
                        .malformedMessage, taskName: name,
                        detail:
                            "\"notify\" is not a channel name (1 to 1024 bytes, no spaces or control characters)"
                    )
                }
                notify = valid
            }
            func date(_ key: String) throws -> Date? {
                guard let text = try object.string(key) else { return nil }
                guard let date = RFC3339.parse(text) else {
                    throw IvyError(
                        .malformedMessage, taskName: name, detail: "\"\(key)\" is not an RFC 3339 time")
                }
                return date
            }
            self.init(
                name: name, args: Array(args), options: options, id: try object.string("id"),
                notify: notify, attempt: attempt, createdAt: try date("created_at"),
                deadline: try date("deadline"), eta: try date("eta"))
        } catch let failure as JSONObjectReader.Failure {
            throw IvyError(.malformedMessage, detail: "invalid JSON: \(failure)")
        } catch let error as IvyError {
            throw error
        } catch {
            throw IvyError(.malformedMessage, detail: "\(error)")
        }
    }
}
