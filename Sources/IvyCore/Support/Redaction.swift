// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Removes secrets from text that may be printed: logs, errors, URLs echoed back.
public enum Redaction {
    /// The URL with any `user:password@` or token part replaced by `***`, and query values too.
    ///
    /// `redis://app:s3cret@host:6379/0` → `redis://***@host:6379/0`;
    /// `ironmq://TOKEN@host/PROJECT` → `ironmq://***@host/PROJECT`.
    public static func redact(url: String) -> String {
        var text = url
        if let schemeEnd = text.range(of: "://") {
            let authorityStart = schemeEnd.upperBound
            let authorityEnd = text[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" })
                ?? text.endIndex
            if let at = text[authorityStart..<authorityEnd].lastIndex(of: "@") {
                text.replaceSubrange(authorityStart..<at, with: "***")
            }
        }
        if let query = text.firstIndex(of: "?") {
            let parameters = text[text.index(after: query)...].split(separator: "&").map { pair -> String in
                guard let equals = pair.firstIndex(of: "=") else { return String(pair) }
                return pair[..<equals] + "=***"
            }
            text = text[...query] + parameters.joined(separator: "&")
        }
        return text
    }
}
