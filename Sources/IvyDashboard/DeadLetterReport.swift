// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore

/// One dead letter as the page shows it: the body decrypted only where the dashboard has the key.
///
/// Bodies and reasons come from messages, up to the broker's limit (16 MiB on Redis): each is
/// cut to ``shownLimit`` bytes, so that a listing stays small.
struct DeadLetterReport: Encodable, Sendable {
    /// The bytes of a body or reason shown at most.
    static let shownLimit = 16 << 10

    var id: String
    var reason: String
    var attempts: Int
    var deadLetteredAt: Date
    var body: String
    var sealed: Bool
    /// Whether the body or the reason was cut.
    var truncated: Bool

    init(_ letter: DeadLetter, encryption: MessageEncryption?) {
        let body = ReadableBody(letter.body, encryption: encryption)
        let text = body.text
        id = letter.messageID
        reason = letter.reason.cut(toUTF8Count: Self.shownLimit)
        attempts = letter.deliveryCount
        deadLetteredAt = letter.deadLetteredAt
        self.body = text.cut(toUTF8Count: Self.shownLimit)
        sealed = body.sealed
        truncated = reason != letter.reason || self.body != text
    }
}
