// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
package import IvyCore

/// Where and how to reach a Redis server.
///
/// URLs: `redis://[user:password@]host[:port][/db]`, `rediss://…` for TLS (``RedisTLSOptions``
/// lists its query items: `ca`, `cert`, `key`, `sni`, `insecure`) and
/// `unix:///path/to/redis.sock[?db=N]` (user and password percent-encoded; an IPv6 host in
/// brackets, `redis://[::1]:6379`), optionally with `?name=` for the connections' name in
/// `CLIENT LIST`. The password is a `Secret`: it never prints.
package struct RedisConfiguration: Sendable {
    package enum Address: Sendable, Hashable {
        /// A host name or IP address (IPv6 without brackets: `::1`) and a port.
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    package var address: Address
    package var username: String?
    package var password: Secret?
    package var database: Int
    package var connectTimeout: Duration
    /// The longest one command (or pipeline) may take, blocking commands' own wait excluded.
    package var commandTimeout: Duration
    /// Set with `CLIENT SETNAME` on every connection, so operators can tell them apart.
    package var clientName: String?
    /// TLS, for `rediss://`; nil: plain text.
    package var tls: RedisTLSOptions?

    package init(
        address: Address, username: String? = nil, password: Secret? = nil, database: Int = 0,
        connectTimeout: Duration = .seconds(5), commandTimeout: Duration = .seconds(10),
        tls: RedisTLSOptions? = nil
    ) {
        self.tls = tls
        self.address = address
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Parses a `redis://`, `rediss://` or `unix://` URL.
    ///
    /// - Throws: `IvyError/Code/invalidURL`, showing the URL with credentials as `***`.
    package init(url: String) throws(IvyError) {
        let redacted = Redaction.redact(url: url)
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw IvyError(.invalidURL, endpoint: redacted, detail: "not a URL")
        }
        var database = 0
        switch scheme {
        case "redis", "rediss":
            guard var host = components.host, !host.isEmpty else {
                throw IvyError(.invalidURL, endpoint: redacted, detail: "no host")
            }
            // An IPv6 literal comes in brackets ("[::1]"); the resolver wants the address alone.
            if host.hasPrefix("[") && host.hasSuffix("]") {
                host = String(host.dropFirst().dropLast())
                guard !host.isEmpty else {
                    throw IvyError(.invalidURL, endpoint: redacted, detail: "no host")
                }
            }
            let port = components.port ?? 6379
            guard (1...65535).contains(port) else {
                throw IvyError(.invalidURL, endpoint: redacted, detail: "bad port")
            }
            address = .tcp(host: host, port: port)
            let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !path.isEmpty {
                guard let number = Int(path), number >= 0 else {
                    throw IvyError(
                        .invalidURL, endpoint: redacted, detail: "the path must be a database number")
                }
                database = number
            }
        case "unix":
            guard !components.path.isEmpty else {
                throw IvyError(.invalidURL, endpoint: redacted, detail: "no socket path")
            }
            address = .unix(path: components.path)
        default:
            throw IvyError(
                .unsupportedBackend, endpoint: redacted, detail: "expected redis://, rediss:// or unix://")
        }
        tls = try Self.tlsOptions(components, isTLS: scheme == "rediss", redacted: redacted)
        for item in components.queryItems ?? [] where item.name == "db" {
            guard let value = item.value.flatMap(Int.init), value >= 0 else {
                throw IvyError(.invalidURL, endpoint: redacted, detail: "db must be a number")
            }
            database = value
        }
        clientName = nil
        for item in components.queryItems ?? [] where item.name == "name" {
            // CLIENT SETNAME refuses spaces and newlines; so does this, up front.
            guard let name = item.value, !name.isEmpty, name.allSatisfy({ $0.isASCII && !$0.isWhitespace })
            else {
                throw IvyError(
                    .invalidURL, endpoint: redacted, detail: "name must be non-empty ASCII without spaces")
            }
            clientName = name
        }
        let user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding }
        let password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        if let password {
            username = user.flatMap { $0.isEmpty ? nil : $0 }
            self.password = Secret(password)
        } else if let user, !user.isEmpty {
            // redis://secret@host: a lone user part is the password, as redis-cli -u reads it.
            username = nil
            self.password = Secret(user)
        } else {
            username = nil
            self.password = nil
        }
        self.database = database
        connectTimeout = .seconds(5)
        commandTimeout = .seconds(10)
    }

    /// The TLS options of a URL's query; nil for plain text.
    private static func tlsOptions(_ components: URLComponents, isTLS: Bool, redacted: String)
        throws(IvyError)
        -> RedisTLSOptions?
    {
        func invalid(_ detail: String) -> IvyError {
            IvyError(.invalidURL, endpoint: redacted, detail: detail)
        }
        var options = RedisTLSOptions()
        for item in components.queryItems ?? [] where RedisTLSOptions.queryItems.contains(item.name) {
            guard isTLS else { throw invalid("\(item.name) is for rediss:// (TLS) only") }
            let value = item.value ?? ""
            switch item.name {
            case "insecure":
                guard value == "1" || value == "0" else { throw invalid("insecure must be 1 or 0") }
                options.verifiesPeer = value != "1"
            case "sni":
                guard !value.isEmpty, value.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                    throw invalid("sni must be a host name")
                }
                options.serverName = value
            default:
                guard !value.isEmpty else { throw invalid("\(item.name) needs a file's path") }
                switch item.name {
                case "ca": options.caFile = value
                case "cert": options.certificateFile = value
                default: options.keyFile = value
                }
            }
        }
        guard (options.certificateFile == nil) == (options.keyFile == nil) else {
            throw invalid("cert and key go together")
        }
        return isTLS ? options : nil
    }

    /// Checks the values a program may set after parsing; a connection does before it connects.
    ///
    /// - Throws: `IvyError/Code/invalidConfiguration` naming the first field out of range.
    package func validate() throws(IvyError) {
        try IvyError.check(
            "RedisConfiguration.connectTimeout", connectTimeout, in: .milliseconds(1)...(.seconds(86_400)))
        try IvyError.check(
            "RedisConfiguration.commandTimeout", commandTimeout, in: .milliseconds(1)...(.seconds(86_400)))
        try IvyError.check("RedisConfiguration.database", database, in: 0...Int(Int32.max))
        if case .tcp(_, let port) = address {
            try IvyError.check("RedisConfiguration port", port, in: 1...65_535)
        } else if tls != nil {
            throw IvyError(
                .invalidConfiguration, endpoint: endpoint,
                detail: "TLS needs a host and port, not a unix socket")
        }
    }

    /// Warns through `logger` when `insecure=1` turned the server's certificate check off.
    package func warnIfUnverified(_ logger: any IvyLogger) {
        guard let tls, !tls.verifiesPeer else { return }
        logger.warning(
            "TLS without certificate checks (insecure=1): whoever is on the path can read and change the traffic",
            ["endpoint": endpoint])
    }

    /// The address for logs and errors, credentials as `***`.
    package var endpoint: String {
        let credentials = (username != nil || password != nil) ? "***@" : ""
        switch address {
        case .tcp(let host, let port):
            // IPv6 addresses go back in brackets, their zone's "%" encoded (RFC 6874).
            let shown = host.contains(":") ? "[\(host.replacingOccurrences(of: "%", with: "%25"))]" : host
            return "\(tls == nil ? "redis" : "rediss")://\(credentials)\(shown):\(port)/\(database)"
        case .unix(let path): return "unix://\(credentials)\(path)?db=\(database)"
        }
    }
}
