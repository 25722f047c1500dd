// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Turns task messages and notifications into the bytes a backend or notifier carries, and back.
///
/// Backends and notifiers only see these bytes; anything applied to every message (such as
/// encryption) belongs here, so every path gets it.
struct MessageCodec: Sendable {
    func encode(_ message: TaskMessage) -> [UInt8] {
        message.encoded()
    }

    func decodeTask(_ body: [UInt8]) throws(IvyError) -> TaskMessage {
        try TaskMessage(decoding: body)
    }

    func encode(_ notification: ResultNotification) -> [UInt8] {
        notification.encoded()
    }

    func decodeNotification(_ payload: [UInt8]) throws(IvyError) -> ResultNotification {
        try ResultNotification(decoding: payload)
    }
}
