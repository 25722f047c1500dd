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
        // Everything between the scheme and the LAST "@" is credentials, even when it holds "/",
        // "?" or "#", or when the text is no well-formed URL at all: masking too much is fine,
        // masking too little is not.
        if let at = text.lastIndex(of: "@") {
            let start = text.range(of: "://").map(\.upperBound)
                ?? text.range(of: ":/").map(\.upperBound)
                ?? text.startIndex
            if start <= at {
                text.replaceSubrange(start..<at, with: "***")
            } else {
                text.replaceSubrange(text.startIndex..<at, with: "***")
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
