// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Turns task messages and notifications into the bytes a backend or notifier carries, and back.
///
/// Backends and notifiers only see these bytes; anything applied to every message belongs here,
/// so every path gets it: with ``encryption`` set, messages and notifications are sealed on the
/// way out and opened on the way in.
struct MessageCodec: Sendable {
    var encryption: MessageEncryption?

    /// A new message, sealed in the encryption's own format when there is a key.
    func encode(_ message: TaskMessage) -> [UInt8] {
        encode(message, sealedAs: encryption?.format)
    }

    /// A message sent again (a retry by resending), in the form it came in: sealed the same
    /// way, or plaintext, so that whoever could read it before reads it again.
    func encode(_ message: TaskMessage, as form: MessageEncryption.Format?) -> [UInt8] {
        encode(message, sealedAs: form)
    }

    private func encode(_ message: TaskMessage, sealedAs format: MessageEncryption.Format?) -> [UInt8] {
        let plaintext = message.encoded()
        guard let encryption, let format else { return plaintext }
        return encryption.seal(
            plaintext, route: message.id.map { .init(id: $0, notify: message.notify?.rawValue) },
            format: format)
    }

    func decodeTask(_ body: [UInt8]) throws(IvyError) -> TaskMessage {
        try decodeCall(body).message
    }

    /// The message, and the format it came sealed in (nil: plaintext), which its outcome is
    /// answered in (``encode(_:answering:)``).
    func decodeCall(_ body: [UInt8]) throws(IvyError) -> (
        message: TaskMessage, sealedAs: MessageEncryption.Format?
    ) {
        let message = try TaskMessage(decoding: try open(body))
        let format = MessageEncryption.format(of: body)
        if format == .authenticated { try checkRoute(of: body, against: message) }
        return (message, format)
    }

    /// PROTOCOL.md §6.2: an authenticated call's route names the call its plaintext is (or is
    /// empty, for a message without `id`), since a worker that cannot open a message tells the
    /// caller through it. A route that says otherwise is the sign of a broken producer: the call
    /// is refused rather than answered on the wrong channel next time.
    private func checkRoute(of body: [UInt8], against message: TaskMessage) throws(IvyError) {
        let expected = message.id.map { MessageEncryption.Route(id: $0, notify: message.notify?.rawValue) }
        guard MessageEncryption.hasReadableRoute(body), MessageEncryption.route(of: body) == expected else {
            throw IvyError(
                .malformedMessage, taskName: message.name,
                detail: "the token's route does not name this call's id and notify")
        }
    }

    /// A call's outcome, in the form the call came in (PROTOCOL §6.3): sealed for an
    /// authenticated call, plaintext for a plaintext call and for node ivy's format, whose
    /// producers read plaintext notifications only. So a caller always can read its answer.
    func encode(_ notification: ResultNotification, answering form: MessageEncryption.Format?) -> [UInt8] {
        let plaintext = notification.encoded()
        guard let encryption, form == .authenticated else { return plaintext }
        // The route names the call, so that a producer that cannot open the result still ends it.
        return encryption.seal(plaintext, route: .init(id: notification.id), format: .authenticated)
    }

    func decodeNotification(_ payload: [UInt8]) throws(IvyError) -> ResultNotification {
        guard let encryption, !MessageEncryption.isToken(payload) else {
            return try ResultNotification(decoding: try open(payload))
        }
        // Calls in node ivy's format are answered in plaintext, as node ivy does.
        if encryption.format == .legacy { return try ResultNotification(decoding: payload) }
        // Authenticated calls are answered sealed: a plaintext result could be forged by anyone
        // who can publish. The one exception: a worker that could not open a call's message says
        // so in plaintext, since it does not share our key.
        let notice = try ResultNotification(decoding: payload)
        guard case .failure(let remote) = notice.outcome, Self.undecryptableNames.contains(remote.name) else {
            throw IvyError(
                .encryptionRequired, taskID: notice.id,
                detail: "plaintext result refused: this producer's calls are sealed")
        }
        return notice
    }

    /// The call a notification that cannot be opened or trusted is about, read without the key
    /// (so unverified: it may only end that call with an error, never give it a result).
    func callID(ofUnreadable payload: [UInt8]) -> String? {
        if MessageEncryption.isToken(payload) { return MessageEncryption.route(of: payload)?.id }
        return try? ResultNotification(decoding: payload).id
    }

    /// The error names a worker uses when it cannot open a message.
    static let undecryptableNames: Set<String> = ["DecryptionFailed", "EncryptionRequired"]

    /// Plaintext notice for the caller of a message this worker cannot open, if it can be routed.
    func undecryptableNotice(
        _ body: [UInt8], queue: QueueName, deliveryCount: Int, error: IvyError
    ) -> (channel: ChannelName, payload: [UInt8])? {
        let route: MessageEncryption.Route?
        let name: String
        if error.code == .encryptionRequired, let message = try? TaskMessage(decoding: body),
            let id = message.id
        {
            route = .init(id: id, notify: message.notify?.rawValue)
            name = "EncryptionRequired"
        } else if error.code == .decryptionFailed {
            route = MessageEncryption.route(of: body)
            name = "DecryptionFailed"
        } else {
            return nil
        }
        guard let route, let channel = route.notify.flatMap({ try? ChannelName($0) }) else { return nil }
        let notice = ResultNotification(
            id: route.id, name: "", args: Array("[]".utf8), queue: queue.rawValue, attempt: deliveryCount,
            outcome: .failure(.init(name: name, message: error.detail ?? "\(error.code)", retryable: false)))
        return (channel, notice.encoded())
    }

    private func open(_ body: [UInt8]) throws(IvyError) -> [UInt8] {
        if let encryption { return try encryption.open(body) }
        guard !MessageEncryption.isToken(body) else {
            throw IvyError(
                .decryptionFailed,
                detail: "the message is encrypted and no key is configured (MESSAGES_ENCRYPTION_KEY)")
        }
        return body
    }
}
