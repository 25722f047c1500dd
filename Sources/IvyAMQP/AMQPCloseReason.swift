// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CRabbitMQ

/// Why the broker closed a channel or the connection: its `channel.close` or `connection.close`.
///
/// RabbitMQ's reply text begins with the reply code's name and says what it refused, such as
/// `NOT_FOUND - no queue 'jobs' in vhost 'prod'` or `ACCESS_REFUSED - Login was refused using
/// authentication mechanism PLAIN`; it never holds a password.
struct AMQPCloseReason: Sendable, CustomStringConvertible {
    /// The AMQP reply code: 404 not found, 403 access refused, 406 precondition failed,
    /// 320 connection forced, 530 not allowed …
    let code: UInt16
    let text: String
    /// The method the broker refused, as `class.method`; nil when it names none.
    let method: String?

    init(code: UInt16, text: String, method: String?) {
        self.code = code
        self.text = text
        self.method = method
    }

    /// The reason in a `channel.close` or `connection.close` method; nil for another method or
    /// one without its decoded fields.
    init?(_ method: amqp_method_t) {
        guard let decoded = method.decoded else { return nil }
        switch method.id {
        case AMQP_CONNECTION_CLOSE_METHOD:
            let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            self.init(
                code: close.reply_code, text: close.reply_text.string,
                method: Self.name(class: close.class_id, method: close.method_id))
        case AMQP_CHANNEL_CLOSE_METHOD:
            let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            self.init(
                code: close.reply_code, text: close.reply_text.string,
                method: Self.name(class: close.class_id, method: close.method_id))
        default:
            return nil
        }
    }

    var description: String {
        let text = text.isEmpty ? "reply code \(code)" : "\(text) (reply code \(code))"
        return method.map { "\(text) in reply to \($0)" } ?? text
    }

    /// The names of the methods Ivy sends, for error text; nil for class 0 (none named).
    static func name(class classID: UInt16, method methodID: UInt16) -> String? {
        guard classID != 0 else { return nil }
        let names: [UInt32: String] = [
            0x000A_000B: "connection.start-ok", 0x000A_0028: "connection.open", 0x0014_000A: "channel.open",
            0x0032_000A: "queue.declare",
            0x0032_001E: "queue.purge", 0x0032_0028: "queue.delete", 0x003C_000A: "basic.qos",
            0x003C_0014: "basic.consume", 0x003C_001E: "basic.cancel", 0x003C_0028: "basic.publish",
            0x003C_0046: "basic.get", 0x003C_0050: "basic.ack", 0x003C_005A: "basic.reject",
            0x0055_000A: "confirm.select",
        ]
        return names[UInt32(classID) << 16 | UInt32(methodID)] ?? "method \(classID).\(methodID)"
    }
}
