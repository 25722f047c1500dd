// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CHiredis
package import IvyCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// One hiredis connection: the owner of its `redisContext`.
///
/// Not `Sendable`: only its connection's thread uses it. Every call blocks that thread.
package final class RedisContext {
    private let raw: UnsafeMutablePointer<redisContext>
    let endpoint: String
    /// How long a blocking read or write may take, for the text of its timeout.
    private let commandTimeout: Duration
    /// The server's id for this connection (`CLIENT ID`), when the server allows asking.
    private(set) var clientID: Int?
    /// The TLS stream of a `rediss://` connection, which reads and writes its bytes; hiredis then
    /// only connects the socket and parses replies.
    private let tls: RedisTLSSession?
    /// Commands waiting for ``flush()`` on a TLS connection.
    private var tlsOutput: [UInt8] = []

    /// Connects, authenticates and selects the database.
    ///
    /// - Throws: `IvyError/Code/connectionFailed` when the server cannot be reached, does not
    ///   answer within the connect or command timeout ("timed out after 5 s"), refuses the
    ///   credentials ("authentication failed: WRONGPASS …"), or wants credentials the
    ///   configuration lacks ("authentication required: NOAUTH …").
    package init(_ configuration: RedisConfiguration) throws(IvyError) {
        try configuration.validate()
        endpoint = configuration.endpoint
        commandTimeout = configuration.commandTimeout
        let connectTimeout = Self.timeval(configuration.connectTimeout)
        let context: UnsafeMutablePointer<redisContext>?
        switch configuration.address {
        case .tcp(let host, let port): context = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path): context = redisConnectUnixWithTimeout(path, connectTimeout)
        }
        guard let context else { preconditionFailure("hiredis could not allocate a context") }
        guard context.pointee.err == 0 else {
            let text = Self.errorText(context, timeout: configuration.connectTimeout)
            redisFree(context)
            throw IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: text)
        }
        raw = context
        if let options = configuration.tls, case .tcp(let host, _) = configuration.address {
            do {
                tls = try RedisTLSSession(
                    socket: context.pointee.fd, host: host, options: options, endpoint: endpoint,
                    deadline: .now + configuration.connectTimeout)
            } catch {
                redisFree(context)
                throw error
            }
        } else {
            tls = nil
        }
        // hiredis frees its read buffer whenever it empties while over 16 KiB, and grows it
        // again on the next burst: under load that was a large free and malloc per read.
        raw.pointee.reader.pointee.maxbuf = 0
        if case .tcp = configuration.address { _ = redisEnableKeepAlive(raw) }
        _ = redisSetTimeout(raw, Self.timeval(configuration.commandTimeout))
        do {
            try setUpSession(configuration)
        } catch let error
            where tls == nil
            && ["Server closed the connection", "Connection reset by peer"].contains(error.detail)
        {
            // What a TLS port does to a client that speaks plain text.
            throw IvyError(
                .connectionFailed, endpoint: endpoint,
                detail: "the server closed the connection (a TLS port? use rediss://)")
        }
    }

    /// Authenticates, selects the database, names the connection and learns its id.
    private func setUpSession(_ configuration: RedisConfiguration) throws(IvyError) {
        if let password = configuration.password {
            var auth = RedisCommand("AUTH")
            if let username = configuration.username { auth.append(username) }
            auth.append(password.exposedValue)
            if case .error(let message) = try command(auth) {
                // The server's text ("WRONGPASS invalid username-password pair…") has no secret.
                throw IvyError(
                    .connectionFailed, endpoint: endpoint, detail: "authentication failed: \(message)")
            }
        }
        if configuration.database != 0 {
            _ = try setUp(RedisCommand("SELECT", configuration.database)).checked(
                endpoint: endpoint, command: "SELECT")
        }
        if let name = configuration.clientName {
            _ = try setUp(RedisCommand("CLIENT", "SETNAME", name)).checked(
                endpoint: endpoint, command: "CLIENT SETNAME")
        }
        // Also the first command a server with a password refuses when the configuration has
        // none; without this check, a pub/sub connection would wait for its SUBSCRIBE forever.
        clientID = try setUp(RedisCommand("CLIENT", "ID")).integer
    }

    deinit { redisFree(raw) }

    /// The socket, for `poll`.
    package var fileDescriptor: Int32 { raw.pointee.fd }

    /// Whether other threads may write commands to ``fileDescriptor`` themselves while this
    /// connection's thread waits: not through TLS, whose stream only its thread may touch.
    package var allowsCallerWrites: Bool { tls == nil }

    /// Sends one command and waits for its reply.
    func command(_ command: RedisCommand) throws(IvyError) -> RedisReply {
        try pipeline([command])[0]
    }

    /// Sends commands in one write and reads their replies in order.
    func pipeline(_ commands: [RedisCommand]) throws(IvyError) -> [RedisReply] {
        for command in commands { try append(command) }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        if let tls {
            try flush()
            let deadline = ContinuousClock.now + commandTimeout
            while replies.count < commands.count {
                var reply: UnsafeMutablePointer<redisReply>?
                guard ivy_redis_get_reply_from_reader(raw, &reply) == REDIS_OK else { throw ioError() }
                if let reply {
                    replies.append(Self.copy(reply))
                    freeReplyObject(reply)
                } else {
                    try tls.waitReadable(until: deadline)
                    try feedReader(from: tls)
                }
            }
            return replies
        }
        for _ in commands {
            var reply: UnsafeMutablePointer<redisReply>?
            guard ivy_redis_get_reply(raw, &reply) == REDIS_OK, let reply else { throw ioError() }
            replies.append(Self.copy(reply))
            freeReplyObject(reply)
        }
        return replies
    }

    /// Queues commands and writes them out, without waiting for replies (pub/sub).
    package func write(_ commands: [RedisCommand]) throws(IvyError) {
        try append(commands)
        try flush()
    }

    /// Queues commands in hiredis' output buffer; ``flush()`` writes them.
    func append(_ commands: [RedisCommand]) throws(IvyError) {
        for command in commands { try append(command) }
    }

    /// Queues commands already in the Redis protocol; ``flush()`` writes them.
    func append(encoded bytes: [UInt8]) throws(IvyError) {
        if tls != nil {
            tlsOutput += bytes
            return
        }
        let status = bytes.withUnsafeBytes { bytes in
            redisAppendFormattedCommand(
                raw, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        guard status == REDIS_OK else { throw ioError() }
    }

    /// Writes the output buffer to the socket.
    func flush() throws(IvyError) {
        if let tls {
            defer { tlsOutput.removeAll(keepingCapacity: true) }
            try tls.write(tlsOutput, until: .now + commandTimeout)
            return
        }
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(raw, &done) == REDIS_OK else { throw ioError() }
        }
    }

    /// Reads what the socket holds (call when `poll` says it is readable) and returns every
    /// complete reply.
    package func readAvailable() throws(IvyError) -> [RedisReply] {
        if let tls {
            try feedReader(from: tls)
        } else {
            guard redisBufferRead(raw) == REDIS_OK else { throw ioError() }
        }
        var replies: [RedisReply] = []
        while true {
            var reply: UnsafeMutablePointer<redisReply>?
            guard ivy_redis_get_reply_from_reader(raw, &reply) == REDIS_OK else { throw ioError() }
            guard let reply else { return replies }
            replies.append(Self.copy(reply))
            freeReplyObject(reply)
        }
    }

    /// Hands what the TLS stream has decrypted to hiredis' reply parser.
    private func feedReader(from tls: RedisTLSSession) throws(IvyError) {
        try tls.readAvailable { bytes throws(IvyError) in
            let status = redisReaderFeed(
                raw.pointee.reader, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
            guard status == REDIS_OK else { throw ioError() }
        }
    }

    private func append(_ command: RedisCommand) throws(IvyError) {
        if tls != nil {
            tlsOutput += command.header
            tlsOutput += command.encodedArguments
            return
        }
        // hiredis copies preformatted bytes as they are: the header, then the arguments.
        for part in [command.header, command.encodedArguments] {
            let status = part.withUnsafeBytes { bytes in
                redisAppendFormattedCommand(
                    raw, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            guard status == REDIS_OK else { throw ioError() }
        }
    }

    /// A reply to a command that sets the connection up; NOAUTH fails the connection.
    private func setUp(_ command: RedisCommand) throws(IvyError) -> RedisReply {
        let reply = try self.command(command)
        if let message = reply.errorMessage, let error = Self.authenticationError(message, endpoint: endpoint)
        {
            throw error
        }
        return reply
    }

    /// The error for a reply that says the connection lacks the credentials the server wants
    /// (`NOAUTH Authentication required.`), or nil for other replies.
    package static func authenticationError(_ message: String, endpoint: String) -> IvyError? {
        guard message.hasPrefix("NOAUTH") else { return nil }
        return IvyError(
            .connectionFailed, endpoint: endpoint,
            detail: "authentication required (the server has a password; put it in the URL): \(message)")
    }

    /// Whether `error` says the credentials are wrong or missing: retrying will not help.
    package static func isAuthenticationFailure(_ error: IvyError) -> Bool {
        guard error.code == .connectionFailed, let detail = error.detail else { return false }
        return detail.hasPrefix("authentication failed") || detail.hasPrefix("authentication required")
    }

    private func ioError() -> IvyError {
        IvyError(.connectionFailed, endpoint: endpoint, detail: Self.errorText(raw, timeout: commandTimeout))
    }

    /// hiredis' text for the context's error; a socket timeout (which hiredis 0.14 reports as
    /// `EAGAIN`, "Resource temporarily unavailable", or as `ETIMEDOUT` while connecting, and
    /// hiredis 1.x as `REDIS_ERR_TIMEOUT`) says which timeout ran out instead.
    private static func errorText(_ context: UnsafeMutablePointer<redisContext>, timeout: Duration) -> String
    {
        let text = withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        let redisErrorTimeout: Int32 = 6  // REDIS_ERR_TIMEOUT, which hiredis 0.14's header lacks
        if context.pointee.err == redisErrorTimeout
            || (context.pointee.err == REDIS_ERR_IO
                && [EAGAIN, EWOULDBLOCK, ETIMEDOUT].contains { text == String(cString: strerror($0)) })
        {
            return "timed out after \(Self.seconds(timeout)) s"
        }
        return text.isEmpty ? "connection error \(context.pointee.err)" : text
    }

    /// `duration` in seconds for messages, to the millisecond: "5", "0.25".
    static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.wholeMilliseconds
        let fraction = milliseconds % 1000
        guard fraction != 0 else { return "\(milliseconds / 1000)" }
        var decimals = String(fraction + 1000).dropFirst()
        while decimals.last == "0" { decimals.removeLast() }
        return "\(milliseconds / 1000).\(decimals)"
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .string(
                value.str.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(value.len))) } ?? [])
        case REDIS_REPLY_STATUS:
            return .status(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_INTEGER:
            return .integer(Int(value.integer))
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(value.elements)).map { copy(value.element[$0]!) })
        default:
            return .null
        }
    }

    private static func timeval(_ duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
