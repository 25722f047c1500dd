// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// The name of a notification channel: where a worker publishes a call's result and its
/// producer listens.
///
/// One to 1,024 bytes of UTF-8 without control characters (Unicode category Cc: U+0000–001F,
/// U+007F–009F) or white space (Unicode White_Space). A message's `notify` key
/// that breaks this makes the message malformed, so a hostile message cannot aim a result at
/// a name no subscriber could have asked for.
public struct ChannelName: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The name as the notifier sees it.
    public let rawValue: String

    /// Checks `name`.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the rule it breaks.
    public init(_ name: String) throws(IvyError) {
        guard Self.isValid(name) else {
            throw IvyError.invalidConfiguration(
                "a channel name", mustBe: "1 to 1024 bytes without spaces or control characters",
                got:
                    "\"\(name.prefix(64).unicodeScalars.map { $0.properties.isWhitespace || $0.properties.generalCategory == .control ? "?" : String($0) }.joined())\""
            )
        }
        rawValue = name
    }

    /// A name written in the source; an invalid literal is a programmer error and traps.
    public init(stringLiteral name: String) {
        precondition(Self.isValid(name), "invalid channel name \"\(name)\"")
        rawValue = name
    }

    /// The base channel when none is configured: `IVY_NOTIFICATION_CHANNEL_NAME`, else
    /// `ivy-notifier`. A worker publishes the results of messages that name no channel (node
    /// ivy's) here; producers listen on `<base>:<their id>`.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` when the variable holds an invalid name.
    public static func base() throws(IvyError) -> ChannelName {
        let name = ProcessInfo.processInfo.environment["IVY_NOTIFICATION_CHANNEL_NAME"] ?? ""
        guard !name.isEmpty else { return "ivy-notifier" }
        do { return try ChannelName(name) } catch {
            throw IvyError(
                .invalidConfiguration,
                detail: "IVY_NOTIFICATION_CHANNEL_NAME: " + (error.detail ?? "an invalid channel name"))
        }
    }

    /// `<self>:<suffix>`, the form of a producer's own channel; nil if that would be too long.
    package func appending(_ suffix: String) -> ChannelName? {
        try? ChannelName("\(rawValue):\(suffix)")
    }

    /// `<self>:cancel`, where cancels of running calls are announced to workers that allow them;
    /// producers' channels (`<base>:<16 hex digits>`) cannot take this name.
    package var cancelChannel: ChannelName? { appending("cancel") }

    public var description: String { rawValue }

    static func isValid(_ name: String) -> Bool {
        let bytes = name.utf8
        guard (1...1024).contains(bytes.count) else { return false }
        // Every message's `notify` is checked: printable ASCII, the usual case, without the
        // Unicode property tables.
        if bytes.allSatisfy({ (0x21...0x7E).contains($0) }) { return true }
        return name.unicodeScalars.allSatisfy {
            !$0.properties.isWhitespace && $0.properties.generalCategory != .control
        }
    }
}
