// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// The message a worker publishes on a notification channel when a call ends
/// (PROTOCOL.md, "Notification message").
public struct ResultNotification: Sendable, Hashable {
    /// How the call ended.
    public enum Outcome: Sendable, Hashable {
        /// The task returned; the raw JSON array of ivy's callback arguments after `err`.
        case success(result: [UInt8])
        /// The task failed for good (or could not be run at all).
        case failure(RemoteError)
    }

    /// The error part of a failure notification.
    public struct RemoteError: Sendable, Hashable {
        public var name: String
        public var message: String
        public var retryable: Bool

        public init(name: String, message: String, retryable: Bool) {
            self.name = name
            self.message = message
            self.retryable = retryable
        }
    }

    public var id: String
    public var name: String
    public var args: [UInt8]
    public var options: [UInt8]
    public var queue: String
    /// The attempt that produced this outcome.
    public var attempt: Int
    public var outcome: Outcome

    public init(
        id: String, name: String, args: [UInt8], options: [UInt8] = Array("{}".utf8), queue: String,
        attempt: Int, outcome: Outcome
    ) {
        self.id = id
        self.name = name
        self.args = args
        self.options = options
        self.queue = queue
        self.attempt = attempt
        self.outcome = outcome
    }

    public func encoded() -> [UInt8] {
        var writer = JSONWriter(capacity: 160 + args.count)
        writer.raw("{")
        writer.key("id", first: true)
        writer.string(id)
        writer.key("name")
        writer.string(name)
        writer.key("args")
        writer.raw(args)
        writer.key("options")
        writer.raw(options)
        writer.key("queue")
        writer.string(queue)
        writer.key("notify")
        writer.bool(true)
        writer.key("attempt")
        writer.integer(attempt)
        switch outcome {
        case .success(let result):
            writer.key("result")
            writer.raw(result)
        case .failure(let error):
            writer.key("error")
            writer.raw("{")
            writer.key("name", first: true)
            writer.string(error.name)
            writer.key("message")
            writer.string(error.message)
            writer.key("retryable")
            writer.bool(error.retryable)
            writer.raw("}")
        }
        writer.raw("}")
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(IvyError) {
        do {
            let object = try JSONObjectReader(bytes)
            guard let id = try object.string("id") else {
                throw IvyError(.malformedMessage, detail: "missing \"id\"")
            }
            let name = try object.string("name") ?? ""
            let outcome: Outcome
            if let error = try object.object("error") {
                outcome = .failure(
                    RemoteError(
                        name: try error.string("name") ?? "Error", message: try error.string("message") ?? "",
                        retryable: try error.bool("retryable") ?? false))
            } else if let result = object.raw("result"), result.first == UInt8(ascii: "[") {
                outcome = .success(result: Array(result))
            } else {
                throw IvyError(
                    .malformedMessage, taskID: id, detail: "neither \"result\" array nor \"error\"")
            }
            self.init(
                id: id, name: name, args: object.raw("args").map { Array($0) } ?? Array("[]".utf8),
                options: object.raw("options").map { Array($0) } ?? Array("{}".utf8),
                queue: try object.string("queue") ?? "",
                attempt: try object.integer("attempt") ?? 1, outcome: outcome)
        } catch let failure as JSONObjectReader.Failure {
            throw IvyError(.malformedMessage, detail: "invalid JSON: \(failure)")
        } catch let error as IvyError {
            throw error
        } catch {
            throw IvyError(.malformedMessage, detail: "\(error)")
        }
    }
}
