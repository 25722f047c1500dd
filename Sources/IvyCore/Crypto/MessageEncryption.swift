// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// How task messages and notifications are encrypted on the wire (PROTOCOL.md, "Encryption").
///
/// ```swift
/// let encryption = MessageEncryption(key: Secret(env["MESSAGES_ENCRYPTION_KEY"]!),
///                                    decryptionKeys: [Secret(previousKey)])
/// let client = try await IvyClient(registry: registry, connection: connection,
///                                  options: ClientOptions(encryption: encryption))
/// let worker = try IvyWorker(registry: registry, connection: connection,
///                            options: WorkerOptions(encryption: encryption))
/// ```
///
/// New messages are sealed with `key` in ``format``. Messages in either format are opened with
/// `key` or any of `decryptionKeys`, so keys can be rotated: deploy the new key with the old one
/// among the decryption keys, then drop the old one once its messages are gone.
public struct MessageEncryption: Sendable {
    /// The token format of new messages.
    public enum Format: Sendable, Hashable {
        /// `$ivy-v1$…`: random IV, encrypt-then-MAC; tampering is detected. The default.
        case authenticated
        /// `$aes-256-cbc$…`: node ivy's format, for queues that node-ivy workers read.
        case legacy
    }

    /// Where a message's outcome goes, readable from an authenticated token without the key.
    struct Route: Sendable, Hashable, Codable {
        var id: String
        var notify: String?
    }

    public let format: Format
    /// When true, a plaintext message is refused (dead-lettered) instead of run.
    public let requireEncryption: Bool
    /// Whether node ivy's `$aes-256-cbc$` tokens are opened. They carry no MAC, so a queue that
    /// no node-ivy producer writes to is safer with this off.
    public let acceptsLegacyFormat: Bool
    private let keys: KeyRing
    private let hasEmptyKey: Bool

    /// - Parameters:
    ///   - key: Seals new messages and opens messages.
    ///   - decryptionKeys: Older keys that still open messages.
    ///   - format: The format of new messages.
    ///   - requireEncryption: Refuse plaintext messages.
    ///   - acceptsLegacyFormat: Open node ivy's unauthenticated tokens (on by default, for
    ///     queues shared with node ivy; always on with the legacy `format`).
    public init(
        key: Secret, decryptionKeys: [Secret] = [], format: Format = .authenticated,
        requireEncryption: Bool = false,
        acceptsLegacyFormat: Bool = true
    ) {
        hasEmptyKey = key.exposedValue.isEmpty
        self.format = format
        self.requireEncryption = requireEncryption
        self.acceptsLegacyFormat = acceptsLegacyFormat || format == .legacy
        keys = KeyRing(passwords: [key] + decryptionKeys.filter { !$0.exposedValue.isEmpty })
    }

    /// Checks the key; ``ClientOptions/validate()`` and ``WorkerOptions/validate()`` call it.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` when the key is empty.
    public func validate() throws(IvyError) {
        guard !hasEmptyKey else {
            throw IvyError(.invalidConfiguration, detail: "MessageEncryption.key must not be empty")
        }
    }

    /// Encryption from `MESSAGES_ENCRYPTION_KEY`, as node ivy reads it; nil when unset or empty.
    ///
    /// - Parameters:
    ///   - environment: The variables to read; the process's by default.
    ///   - format: The format of new messages.
    ///   - requireEncryption: Refuse plaintext messages.
    public static func fromEnvironment(
        _ environment: [String: String]? = nil, format: Format = .authenticated,
        requireEncryption: Bool = false
    ) -> MessageEncryption? {
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard let key = environment["MESSAGES_ENCRYPTION_KEY"], !key.isEmpty else { return nil }
        return MessageEncryption(key: Secret(key), format: format, requireEncryption: requireEncryption)
    }

    /// Whether a body is an encryption token rather than plaintext JSON.
    static func isToken(_ body: [UInt8]) -> Bool { body.first == UInt8(ascii: "$") }

    /// Encrypts with the current key in ``format``, or in `format` when given.
    func seal(_ plaintext: [UInt8], route: Route?, format: Format? = nil) -> [UInt8] {
        switch format ?? self.format {
        case .legacy: keys.current.legacy.encrypt(plaintext)
        case .authenticated:
            keys.current.authenticated.encrypt(plaintext, route: route.map(Self.encode) ?? [])
        }
    }

    /// The plaintext of a body: decrypted if it is a token, as it is otherwise.
    ///
    /// - Throws: ``IvyError/Code/decryptionFailed`` for a token no key opens (wrong key,
    ///   tampered, truncated, bad base64, unknown format); ``IvyError/Code/encryptionRequired``
    ///   for plaintext when ``requireEncryption`` is set.
    func open(_ body: [UInt8]) throws(IvyError) -> [UInt8] {
        guard Self.isToken(body) else {
            guard !requireEncryption else {
                throw IvyError(
                    .encryptionRequired, detail: "plaintext message refused: encryption is required")
            }
            return body
        }
        if body.starts(with: AuthenticatedCipher.prefix) {
            let (route, sealed) = try Self.splitAuthenticated(body)
            for key in keys.all {
                if let plaintext = key.authenticated.decrypt(route: route, sealed: sealed) {
                    return plaintext
                }
            }
            throw IvyError(
                .decryptionFailed,
                detail: "no configured key authenticates this message (wrong key or tampered)")
        }
        if body.starts(with: LegacyCipher.prefix) {
            guard acceptsLegacyFormat else {
                throw IvyError(
                    .decryptionFailed, detail: "node ivy's unauthenticated format is not accepted here")
            }
            let ciphertext = try Self.base64(body[LegacyCipher.prefix.count...])
            guard !ciphertext.isEmpty, ciphertext.count % AES256CBC.blockSize == 0 else {
                throw IvyError(.decryptionFailed, detail: "truncated message")
            }
            // The legacy format has no tag: a key is taken as right when the padding checks and
            // the plaintext looks like a JSON object.
            for key in keys.all {
                if let plaintext = key.legacy.decrypt(ciphertext: ciphertext),
                    Self.looksLikeJSONObject(plaintext)
                {
                    return plaintext
                }
            }
            throw IvyError(
                .decryptionFailed, detail: "no configured key decrypts this message (wrong key or damaged)")
        }
        throw IvyError(.decryptionFailed, detail: "unknown encryption format")
    }

    /// The format of a token, or nil for plaintext (or a token of no known format).
    static func format(of body: [UInt8]) -> Format? {
        if body.starts(with: AuthenticatedCipher.prefix) { return .authenticated }
        if body.starts(with: LegacyCipher.prefix) { return .legacy }
        return nil
    }

    /// Seals arbitrary bytes (for `ivy encrypt`). A task message with an `id` gets its route, as
    /// a producer's would, so a worker without the key can still tell its caller.
    public func token(for plaintext: [UInt8]) -> [UInt8] {
        let message = try? TaskMessage(decoding: plaintext)
        return seal(plaintext, route: message?.id.map { Route(id: $0, notify: message?.notify?.rawValue) })
    }

    /// Opens a token of either format without requiring the plaintext to be a JSON object (for
    /// `ivy decrypt`).
    ///
    /// - Throws: ``IvyError/Code/decryptionFailed``.
    public func plaintext(of token: [UInt8]) throws(IvyError) -> [UInt8] {
        try openAny(token)
    }

    func openAny(_ body: [UInt8]) throws(IvyError) -> [UInt8] {
        guard body.starts(with: LegacyCipher.prefix) else { return try open(body) }
        let ciphertext = try Self.base64(body[LegacyCipher.prefix.count...])
        guard !ciphertext.isEmpty, ciphertext.count % AES256CBC.blockSize == 0 else {
            throw IvyError(.decryptionFailed, detail: "truncated message")
        }
        for key in keys.all {
            if let plaintext = key.legacy.decrypt(ciphertext: ciphertext) { return plaintext }
        }
        throw IvyError(
            .decryptionFailed, detail: "no configured key decrypts this message (wrong key or damaged)")
    }

    /// Whether an authenticated token's route is empty or a route JSON object (not garbage).
    static func hasReadableRoute(_ body: [UInt8]) -> Bool {
        guard let (route, _) = try? splitAuthenticated(body) else { return false }
        return route.isEmpty || self.route(of: body) != nil
    }

    /// The route of an authenticated token, read without the key (and so unverified).
    static func route(of body: [UInt8]) -> Route? {
        guard body.starts(with: AuthenticatedCipher.prefix), let (route, _) = try? splitAuthenticated(body),
            !route.isEmpty, let json = base64URLDecode(route)
        else { return nil }
        return try? JSONDecoder().decode(Route.self, from: Data(json))
    }

    // MARK: Token parts

    private static func splitAuthenticated(_ body: [UInt8]) throws(IvyError) -> (
        route: ArraySlice<UInt8>, sealed: [UInt8]
    ) {
        let rest = body[AuthenticatedCipher.prefix.count...]
        guard let separator = rest.firstIndex(of: UInt8(ascii: "$")) else {
            throw IvyError(.decryptionFailed, detail: "truncated message")
        }
        let sealed = try base64(rest[(separator + 1)...])
        guard sealed.count >= AES256CBC.blockSize * 2 + AuthenticatedCipher.tagSize,
            (sealed.count - AuthenticatedCipher.tagSize) % AES256CBC.blockSize == 0
        else { throw IvyError(.decryptionFailed, detail: "truncated message") }
        return (rest[..<separator], sealed)
    }

    private static func base64(_ text: ArraySlice<UInt8>) throws(IvyError) -> [UInt8] {
        guard let data = Data(base64Encoded: Data(text)) else {
            throw IvyError(.decryptionFailed, detail: "bad base64")
        }
        return Array(data)
    }

    private static func encode(_ route: Route) -> [UInt8] {
        var writer = JSONWriter(capacity: 96)
        writer.raw("{")
        writer.key("id", first: true)
        writer.string(route.id)
        if let notify = route.notify {
            writer.key("notify")
            writer.string(notify)
        }
        writer.raw("}")
        let base64 = Data(writer.bytes).base64EncodedString()
        return Array(
            base64.utf8.compactMap { byte -> UInt8? in
                switch byte {
                case UInt8(ascii: "+"): UInt8(ascii: "-")
                case UInt8(ascii: "/"): UInt8(ascii: "_")
                case UInt8(ascii: "="): nil
                default: byte
                }
            })
    }

    private static func base64URLDecode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var standard = text.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "-"): UInt8(ascii: "+")
            case UInt8(ascii: "_"): UInt8(ascii: "/")
            default: byte
            }
        }
        while standard.count % 4 != 0 { standard.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(standard)).map(Array.init)
    }

    private static func looksLikeJSONObject(_ bytes: [UInt8]) -> Bool {
        bytes.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 } == UInt8(ascii: "{")
    }
}

extension MessageEncryption: CustomStringConvertible, CustomReflectable {
    public var description: String { "MessageEncryption(\(format), keys: ***)" }
    public var customMirror: Mirror { Mirror(self, children: ["format": format, "keys": "***"]) }
}
