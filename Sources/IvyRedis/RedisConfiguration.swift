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
///
/// A Redis Cluster: `redis+cluster://[user:password@]host1:port,host2:port/` (or
/// `rediss+cluster://` with TLS), any of its nodes as seeds; `redis://host:port?cluster=1` is the
/// same with one seed. A cluster has database 0 only.
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
    /// The nodes a Redis Cluster is first asked for its slot map (``address`` first); nil for one
    /// server.
    package var clusterSeeds: [Address]?

    /// How many replicas must confirm a message sent (or a result kept) before the send counts
    /// as done: `WAIT` after the write, for up to ``replicaTimeout``; fewer in time is logged, not
    /// failed. nil: one on a cluster's masters that have a replica, none on one server.
    /// (`?wait_replicas=N`.)
    package var replicasToConfirm: Int?
    /// How long a send waits for ``replicasToConfirm`` (`?wait_timeout=SECONDS`; 1 s by default;
    /// at most half the command timeout, since the requests behind it on the connection wait too).
    package var replicaTimeout: Duration = .seconds(1)

    /// Whether this is a Redis Cluster, whose commands go to the node that owns their keys.
    package var isCluster: Bool { clusterSeeds != nil }

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
    package init(url given: String) throws(IvyError) {
        let redacted = Redaction.redact(url: given)
        // A cluster's URL names several hosts, which URLComponents does not parse: the first goes
        // through as a plain URL's, the others are parsed on their own below.
        let (url, otherSeeds) = try Self.splitSeeds(given, redacted: redacted)
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
        for item in components.queryItems ?? [] {
            switch item.name {
            case "wait_replicas":
                guard let count = item.value.flatMap(Int.init), (0...16).contains(count) else {
                    throw IvyError(.invalidURL, endpoint: redacted, detail: "wait_replicas must be 0 to 16")
                }
                replicasToConfirm = count
            case "wait_timeout":
                guard let seconds = item.value.flatMap(Double.init), seconds.isFinite,
                    (0.001...5).contains(seconds)
                else {
                    throw IvyError(
                        .invalidURL, endpoint: redacted, detail: "wait_timeout must be 0.001 to 5 seconds")
                }
                replicaTimeout = .milliseconds(Int64((seconds * 1000).rounded()))
            case "command_timeout":
                // On a cluster, what a failover must fit in: above its cluster-node-timeout.
                guard let seconds = item.value.flatMap(Double.init), seconds.isFinite,
                    (0.1...3600).contains(seconds)
                else {
                    throw IvyError(
                        .invalidURL, endpoint: redacted, detail: "command_timeout must be 0.1 to 3600 seconds"
                    )
                }
                commandTimeout = .milliseconds(Int64((seconds * 1000).rounded()))
            default: break
            }
        }
        let clusterItem = components.queryItems?.last { $0.name == "cluster" }?.value
        guard clusterItem == nil || clusterItem == "1" || clusterItem == "0" else {
            throw IvyError(.invalidURL, endpoint: redacted, detail: "cluster must be 1 or 0")
        }
        if let otherSeeds {
            clusterSeeds =
                [address] + (try otherSeeds.map { item throws(IvyError) in try Self.seed(item, redacted) })
        } else if clusterItem == "1" {
            clusterSeeds = [address]
        }
        if isCluster {
            guard case .tcp = address else {
                throw IvyError(
                    .invalidURL, endpoint: redacted,
                    detail: "a cluster is reached over TCP, not a unix socket")
            }
            guard database == 0 else {
                throw IvyError(.invalidURL, endpoint: redacted, detail: "a Redis Cluster has database 0 only")
            }
        }
    }

    /// The URL with only its first host, and the other hosts of a `redis+cluster://` or
    /// `rediss+cluster://` URL (nil for other schemes).
    private static func splitSeeds(_ url: String, redacted: String) throws(IvyError) -> (String, [String]?) {
        let lowercased = url.lowercased()
        for (cluster, plain) in [("redis+cluster://", "redis://"), ("rediss+cluster://", "rediss://")]
        where lowercased.hasPrefix(cluster) {
            let rest = url.dropFirst(cluster.count)
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            // Credentials end at the last "@", as Redaction reads them.
            let at = authority.lastIndex(of: "@")
            let credentials = at.map { authority[...$0] } ?? ""
            let hosts = (at.map { authority[authority.index(after: $0)...] } ?? authority)
                .split(separator: ",", omittingEmptySubsequences: false)
            guard let first = hosts.first, hosts.allSatisfy({ !$0.isEmpty }) else {
                throw IvyError(
                    .invalidURL, endpoint: redacted,
                    detail: "a cluster's URL names HOST:PORT nodes separated by commas")
            }
            guard hosts.count <= 64 else {
                throw IvyError(.invalidURL, endpoint: redacted, detail: "at most 64 seed nodes")
            }
            return (plain + credentials + first + rest[authorityEnd...], hosts.dropFirst().map(String.init))
        }
        return (url, nil)
    }

    /// One `HOST[:PORT]` of a cluster's URL (an IPv6 address in brackets; port 6379 by default).
    private static func seed(_ item: String, _ redacted: String) throws(IvyError) -> Address {
        guard let components = URLComponents(string: "redis://\(item)"), var host = components.host,
            !host.isEmpty,
            components.path.isEmpty, components.user == nil
        else {
            throw IvyError(.invalidURL, endpoint: redacted, detail: "a seed node is HOST[:PORT]")
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? 6379
        guard (1...65535).contains(port) else {
            throw IvyError(.invalidURL, endpoint: redacted, detail: "bad port")
        }
        return .tcp(host: host, port: port)
    }

    /// The configuration of one node of the cluster: the same credentials, TLS and timeouts.
    package func node(_ address: Address) -> RedisConfiguration {
        var node = self
        node.address = address
        node.clusterSeeds = nil
        return node
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
        let scheme = tls == nil ? "redis" : "rediss"
        if let clusterSeeds {
            return "\(scheme)+cluster://\(credentials)\(clusterSeeds.map(Self.shown).joined(separator: ","))/"
        }
        switch address {
        case .tcp: return "\(scheme)://\(credentials)\(Self.shown(address))/\(database)"
        case .unix(let path): return "unix://\(credentials)\(path)?db=\(database)"
        }
    }

    /// `host:port` for messages; IPv6 addresses in brackets, their zone's "%" encoded (RFC 6874).
    package static func shown(_ address: Address) -> String {
        switch address {
        case .tcp(let host, let port):
            let host = host.contains(":") ? "[\(host.replacingOccurrences(of: "%", with: "%25"))]" : host
            return "\(host):\(port)"
        case .unix(let path): return path
        }
    }
}
