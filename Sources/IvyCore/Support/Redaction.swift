// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Removes secrets from text that may be printed: logs, errors, URLs echoed back.
public enum Redaction {
    /// The URL with any `user:password@` or token part replaced by `***`, and the values of
    /// query items that hold credentials too (``isSecret(queryItem:)``).
    ///
    /// `redis://app:s3cret@host:6379/0` → `redis://***@host:6379/0`;
    /// `ironmq://TOKEN@host/PROJECT` → `ironmq://***@host/PROJECT`;
    /// `redis://host?password=s3cret&retain_results=60` → `redis://host?password=***&retain_results=60`.
    public static func redact(url: String) -> String {
        var text = url
        // Everything between the scheme and the LAST "@" is credentials, even when it holds "/",
        // "?" or "#", or when the text is no well-formed URL at all: masking too much is fine,
        // masking too little is not.
        if let at = text.lastIndex(of: "@") {
            let start =
                text.range(of: "://").map(\.upperBound)
                ?? text.range(of: ":/").map(\.upperBound)
                ?? text.startIndex
            if start <= at {
                text.replaceSubrange(start..<at, with: "***")
            } else {
                text.replaceSubrange(text.startIndex..<at, with: "***")
            }
        }
        guard let query = text.firstIndex(of: "?") else { return text }
        let end = text[query...].firstIndex(of: "#") ?? text.endIndex
        let parameters = text[text.index(after: query)..<end].split(
            separator: "&", omittingEmptySubsequences: false
        )
        .map { pair -> String in
            guard let equals = pair.firstIndex(of: "="),
                isSecret(queryItem: String(pair.prefix(upTo: equals)))
            else {
                return String(pair)
            }
            return pair[..<equals] + "=***"
        }
        return String(text[...query]) + parameters.joined(separator: "&") + String(text[end...])
    }

    /// Whether a URL query item of this name holds a credential: its name, percent-decoded and
    /// ignoring case, `-` and `_`, contains `pass`, `pwd`, `secret`, `token`, `key`, `auth`,
    /// `credential` or `signature`, or is `sig` (`password`, `api_key`, `access_token`,
    /// `X-Amz-Signature`, `authSource`). Other values, such as `retain_results=60` or `db=2`, print
    /// as they are.
    public static func isSecret(queryItem name: String) -> Bool {
        let folded = (name.removingPercentEncoding ?? name).lowercased().filter { $0 != "-" && $0 != "_" }
        return ["pass", "pwd", "secret", "token", "key", "auth", "credential", "signature"]
            .contains { folded.contains($0) } || folded == "sig"
    }
}
