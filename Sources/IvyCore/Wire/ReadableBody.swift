// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A message body as people read it (`ivy queue`, `ivy dashboard`): its JSON as it is, or text
/// where it is not JSON; decrypted where it is sealed and the key at hand opens it.
public struct ReadableBody: Sendable, Hashable {
    /// What is shown.
    public enum Content: Sendable, Hashable {
        case json(RawJSON)
        /// Not JSON, or `<sealed>` without a key that opens it.
        case text(String)
    }

    public var content: Content
    /// Whether the body was encrypted (opened or not).
    public var sealed: Bool

    /// Reads `body`, opening it with `encryption` when it is sealed.
    public init(_ body: [UInt8], encryption: MessageEncryption?) {
        guard body.first == UInt8(ascii: "$") else {
            self.init(content: Self.content(body), sealed: false)
            return
        }
        guard let encryption else {
            self.init(content: .text("<sealed>"), sealed: true)
            return
        }
        guard let plaintext = try? encryption.plaintext(of: body) else {
            self.init(content: .text("<sealed: the key given does not open it>"), sealed: true)
            return
        }
        self.init(content: Self.content(plaintext), sealed: true)
    }

    public init(content: Content, sealed: Bool) {
        self.content = content
        self.sealed = sealed
    }

    /// The JSON's text, or the text.
    public var text: String {
        switch content {
        case .json(let value): value.text
        case .text(let text): text
        }
    }

    private static func content(_ bytes: [UInt8]) -> Content {
        if let value = try? RawJSON(validating: bytes) { return .json(value) }
        return .text(String(decoding: bytes, as: UTF8.self))
    }
}
