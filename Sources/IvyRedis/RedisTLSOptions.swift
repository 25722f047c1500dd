// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How a `rediss://` connection speaks TLS.
///
/// From the URL's query: `ca=PATH` (PEM certificate authorities to trust instead of the
/// system's store), `cert=PATH` and `key=PATH` (a client certificate and its key, for servers
/// started with `tls-auth-clients yes`), `sni=NAME` (the server name sent and checked instead of
/// the host) and `insecure=1` (no certificate check at all: logged as a warning, for tests).
package struct RedisTLSOptions: Sendable, Hashable {
    /// PEM file of the certificate authorities to trust; nil: the system's store.
    package var caFile: String?
    /// PEM file of a client certificate (and its chain), sent when the server asks for one.
    package var certificateFile: String?
    /// PEM file of the client certificate's private key.
    package var keyFile: String?
    /// The name sent as SNI and checked against the server's certificate; nil: the URL's host.
    package var serverName: String?
    /// Whether the server's certificate is checked (chain and name). Off only by explicit choice.
    package var verifiesPeer: Bool

    package init(
        caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
        serverName: String? = nil, verifiesPeer: Bool = true
    ) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.verifiesPeer = verifiesPeer
    }

    /// The query items these options take in a URL.
    static let queryItems: Set<String> = ["ca", "cert", "key", "sni", "insecure"]
}
