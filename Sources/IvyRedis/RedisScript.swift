// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore

/// A Lua script, run by its SHA-1 (`EVALSHA`) and loaded only when the server lacks it.
package struct RedisScript: Sendable {
    package let name: String
    package let source: String
    /// The hash the server knows the script by.
    package let sha1: String

    package init(name: String, source: String) {
        self.name = name
        self.source = source
        sha1 = OpenSSL.sha1Hex(Array(source.utf8))
    }

    /// `EVALSHA` with `keys` and `arguments`.
    package func command(keys: [String], arguments: [any RedisArgument]) -> RedisCommand {
        var command = RedisCommand("EVALSHA", sha1, keys.count)
        for key in keys { command.append(key) }
        for argument in arguments { command.append(argument) }
        return command
    }
}

extension RedisConnection {
    /// Runs `script`, loading it first when the server does not know it (a restart, a flush).
    ///
    /// - Returns: The script's reply, which may be an error reply.
    package func evaluate(_ script: RedisScript, keys: [String], arguments: [any RedisArgument]) async throws
        -> RedisReply
    {
        try await awaiting { evaluate(script, keys: keys, arguments: arguments, completion: $0) }
    }

    /// Runs `script` like ``evaluate(_:keys:arguments:)``, without suspending; `completion` runs
    /// on the connection's thread (see ``send(_:completion:)``).
    ///
    /// - Parameters:
    ///   - prelude: Commands sent in the same request, before the script, whose replies are
    ///     dropped: they run before it, or fail with it when the request does.
    ///   - postlude: Commands sent in the same request after the script (a `WAIT` for replicas),
    ///     whose replies go to `postludeReplies` when the script ran.
    package func evaluate(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgument], prelude: [RedisCommand] = [],
        postlude: [RedisCommand] = [], postludeReplies: (@Sendable ([RedisReply]) -> Void)? = nil,
        completion: @escaping @Sendable (Result<RedisReply, any Error>) -> Void
    ) {
        let command = script.command(keys: keys, arguments: arguments)
        /// The script's reply, and the postlude's replies handed over.
        let finish: @Sendable (Result<[RedisReply], any Error>, Int) -> Void = { result, index in
            completion(
                result.flatMap { replies in
                    guard index < replies.count else {
                        return .failure(IvyError(.commandFailed, endpoint: self.endpoint, detail: "no reply"))
                    }
                    if !postlude.isEmpty { postludeReplies?(Array(replies[(index + 1)...])) }
                    return .success(replies[index])
                })
        }
        send(prelude + [command] + postlude) { result in
            guard case .success(let replies) = result, prelude.count < replies.count,
                replies[prelude.count].errorMessage?.hasPrefix("NOSCRIPT") == true
            else {
                return finish(result, prelude.count)
            }
            self.send([RedisCommand("SCRIPT", "LOAD", script.source), command] + postlude) { finish($0, 1) }
        }
    }
}
