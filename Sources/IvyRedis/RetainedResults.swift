// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

/// Durable results on Redis: each channel's results kept in a stream for the producers that
/// reconnect (PROTOCOL.md §8). Written by the notifier's script and by the backend's ack script,
/// which share what is here.
package enum RetainedResults {
    /// The stream that keeps `channel`'s results: field `p` per result, trimmed to the retention,
    /// expiring with it.
    package static func key(_ channel: String) -> String { "ivy:{\(channel)}:results" }

    /// Lua: `keep(key, payload, retention ms, now ms)` adds a result to a channel's stream,
    /// dropping entries older than the retention, and makes the stream expire with it.
    package static let keepFunction = """

        local function keep(key, payload, retention, nowMs)
          redis.call('XADD', key, 'MINID', '~', nowMs - retention, '*', 'p', payload)
          redis.call('PEXPIRE', key, retention)
        end
        """

    /// Whether keeping and publishing a result that failed may succeed if tried again: the server
    /// was out of reach (not refusing credentials), or said it is not ready yet.
    package static func isWorthRetrying(_ error: any Error) -> Bool {
        guard let error = error as? IvyError else { return false }
        if error.code == .connectionFailed { return !RedisContext.isAuthenticationFailure(error) }
        guard error.code == .commandFailed, let detail = error.detail else { return false }
        // `checked` writes "<command>: <the server's error>".
        let message = detail.split(separator: ":", maxSplits: 1).last.map { $0.drop { $0 == " " } } ?? ""
        return ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"].contains { message.hasPrefix("\($0) ") }
    }
}
