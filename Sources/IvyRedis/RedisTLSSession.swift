// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import COpenSSL
internal import IvyCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// OpenSSL over a connected socket: the bytes of a `rediss://` connection.
///
/// hiredis 0.14 has no TLS, so a TLS connection lets hiredis connect the socket and parse the
/// replies, and does the reading and writing here. The socket is non-blocking: reads take what
/// has arrived, and waits for the socket happen in `poll` with a deadline, on the connection's
/// own thread like every other call of its context.
///
/// Not `Sendable`: only its connection's thread uses it.
final class RedisTLSSession {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let socket: Int32
    private let endpoint: String
    /// Where reads land before hiredis parses them: one TLS record's worth.
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 << 10, alignment: 1)

    /// Shakes hands over `socket`, checking the server's certificate unless the options say not to.
    ///
    /// - Throws: `IvyError/Code/connectionFailed` saying why: "TLS handshake failed: certificate
    ///   verify failed (self-signed certificate in certificate chain)", "cannot read the CA file …".
    init(
        socket: Int32, host: String, options: RedisTLSOptions, endpoint: String,
        deadline: ContinuousClock.Instant
    ) throws(IvyError) {
        self.socket = socket
        self.endpoint = endpoint
        // A write to a socket the server has closed raises SIGPIPE, which ends the process unless
        // it is handled; OpenSSL writes with write(2), which has no MSG_NOSIGNAL. Blocked in this
        // thread, the connection's own, the write fails with EPIPE instead.
        var brokenPipe = sigset_t()
        sigemptyset(&brokenPipe)
        sigaddset(&brokenPipe, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &brokenPipe, nil)

        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw IvyError(.connectionFailed, endpoint: endpoint, detail: "TLS: \(Self.openSSLError())")
        }
        self.context = context
        // Before SSL_new, which copies them from the context.
        guard ivy_ssl_ctx_set_min_proto_version(context, TLS1_2_VERSION) == 1 else {
            SSL_CTX_free(context)
            throw IvyError(.connectionFailed, endpoint: endpoint, detail: "TLS: \(Self.openSSLError())")
        }
        ivy_ssl_ctx_refuse_passphrases(context)
        guard let ssl = SSL_new(context) else {
            SSL_CTX_free(context)
            throw IvyError(.connectionFailed, endpoint: endpoint, detail: "TLS: \(Self.openSSLError())")
        }
        self.ssl = ssl
        // From here on, deinit frees both.
        _ = ivy_ssl_set_mode(ssl, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        try configure(host: host, options: options)
        guard fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK) == 0, SSL_set_fd(ssl, socket) == 1
        else {
            throw IvyError(.connectionFailed, endpoint: endpoint, detail: "TLS: cannot use the socket")
        }
        while true {
            ERR_clear_error()
            let status = SSL_connect(ssl)
            if status == 1 { break }
            let error = SSL_get_error(ssl, status)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE {
                // A server that speaks plain text waits for the end of a command line that never comes.
                try wait(
                    for: error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, until: deadline,
                    doing: "TLS handshake (does the server speak TLS on this port?)")
                continue
            }
            throw IvyError(
                .connectionFailed, endpoint: endpoint,
                detail: "TLS handshake failed: \(handshakeFailure(error))")
        }
    }

    deinit {
        readBuffer.deallocate()
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    /// Trust, client certificate, SNI and the name to check.
    private func configure(host: String, options: RedisTLSOptions) throws(IvyError) {
        func failure(_ text: String) -> IvyError {
            IvyError(.connectionFailed, endpoint: endpoint, detail: "\(text): \(Self.openSSLError())")
        }
        if options.verifiesPeer {
            SSL_set_verify(ssl, SSL_VERIFY_PEER, nil)
            if let caFile = options.caFile {
                guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                    throw failure("cannot read the CA file \(caFile)")
                }
            } else {
                guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                    throw failure("cannot read the system's trusted certificates")
                }
            }
        } else {
            SSL_set_verify(ssl, SSL_VERIFY_NONE, nil)
        }
        if let certificateFile = options.certificateFile {
            guard SSL_use_certificate_chain_file(ssl, certificateFile) == 1 else {
                throw failure("cannot read the client certificate \(certificateFile)")
            }
        }
        if let keyFile = options.keyFile {
            guard SSL_use_PrivateKey_file(ssl, keyFile, SSL_FILETYPE_PEM) == 1 else {
                throw failure("cannot read the client key file (a key with a passphrase is not supported)")
            }
            guard SSL_check_private_key(ssl) == 1 else {
                throw failure("the client key does not match the client certificate")
            }
        }
        let name = options.serverName ?? host
        let isAddress = Self.isIPAddress(name)
        // SNI carries host names only (RFC 6066); an address is checked against the certificate's
        // IP entries instead of its DNS names.
        if !isAddress { _ = ivy_ssl_set_tlsext_host_name(ssl, name) }
        if options.verifiesPeer {
            let named =
                isAddress
                ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
                : SSL_set1_host(ssl, name) == 1
            guard named else { throw failure("cannot check the server's name \(name)") }
        }
    }

    // MARK: Bytes

    /// Writes all of `bytes`, waiting for the socket until `deadline` when it is full.
    func write(_ bytes: [UInt8], until deadline: ContinuousClock.Instant) throws(IvyError) {
        var offset = 0
        while offset < bytes.count {
            ERR_clear_error()
            let written = bytes.withUnsafeBytes { buffer in
                SSL_write(ssl, buffer.baseAddress! + offset, Int32(clamping: buffer.count - offset))
            }
            if written > 0 {
                offset += Int(written)
                continue
            }
            try waitOrFail(SSL_get_error(ssl, written), until: deadline, doing: "write")
        }
    }

    /// Reads whatever has arrived, without waiting, and hands each piece to `consume`.
    ///
    /// Reads until OpenSSL holds nothing more, so that `poll` on the socket is a true guide to
    /// whether more is coming.
    ///
    /// - Throws: `IvyError/Code/connectionFailed` when the server closed the connection or the
    ///   TLS stream broke.
    func readAvailable(into consume: (UnsafeRawBufferPointer) throws(IvyError) -> Void) throws(IvyError) {
        while true {
            ERR_clear_error()
            let count = SSL_read(ssl, readBuffer.baseAddress, Int32(readBuffer.count))
            if count > 0 {
                try consume(UnsafeRawBufferPointer(rebasing: readBuffer.prefix(Int(count))))
                continue
            }
            let error = SSL_get_error(ssl, count)
            if error == SSL_ERROR_WANT_READ { return }
            // A key update can make a read want to write first; that write is short.
            try waitOrFail(error, until: ContinuousClock.now + .seconds(1), doing: "read")
        }
    }

    /// Waits until the socket can be read, or `deadline`.
    func waitReadable(until deadline: ContinuousClock.Instant) throws(IvyError) {
        try wait(for: POLLIN, until: deadline, doing: "read")
    }

    /// Waits for what `error` asks for, or throws what it says.
    private func waitOrFail(_ error: Int32, until deadline: ContinuousClock.Instant, doing what: String)
        throws(IvyError)
    {
        switch error {
        case SSL_ERROR_WANT_READ: try wait(for: POLLIN, until: deadline, doing: what)
        case SSL_ERROR_WANT_WRITE: try wait(for: POLLOUT, until: deadline, doing: what)
        case SSL_ERROR_ZERO_RETURN:
            throw IvyError(.connectionFailed, endpoint: endpoint, detail: "the server closed the connection")
        case SSL_ERROR_SYSCALL:
            let text = errno == 0 ? "the server closed the connection" : String(cString: strerror(errno))
            throw IvyError(.connectionFailed, endpoint: endpoint, detail: text)
        default:
            throw IvyError(.connectionFailed, endpoint: endpoint, detail: "TLS: \(Self.openSSLError())")
        }
    }

    private func wait(for events: Int32, until deadline: ContinuousClock.Instant, doing what: String)
        throws(IvyError)
    {
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw IvyError(.connectionFailed, endpoint: endpoint, detail: "\(what) timed out")
            }
            var descriptor = pollfd(fd: socket, events: Int16(events), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(remaining.wholeMilliseconds, 60_000) + 1))
            if ready > 0 { return }
            if ready < 0 && errno != EINTR {
                throw IvyError(
                    .connectionFailed, endpoint: endpoint, detail: "poll: \(String(cString: strerror(errno)))"
                )
            }
        }
    }

    // MARK: Errors

    /// Why a handshake failed, in words: the certificate check's verdict when that was it.
    private func handshakeFailure(_ error: Int32) -> String {
        let verdict = SSL_get_verify_result(ssl)
        if verdict != X509_V_OK {
            return "certificate verify failed (\(String(cString: X509_verify_cert_error_string(verdict))))"
        }
        if error == SSL_ERROR_SYSCALL || error == SSL_ERROR_ZERO_RETURN {
            if ERR_peek_error() == 0 {
                return "the server closed the connection (is it a TLS port?)"
            }
        }
        let text = Self.openSSLError()
        // What OpenSSL says when the other side answered in plain text.
        if text.contains("wrong version number") || text.contains("packet length too long") {
            return "\(text) (the server does not speak TLS on this port? use redis:// for plain text)"
        }
        return text
    }

    /// The oldest error on this thread's OpenSSL queue, in words; the queue is emptied.
    private static func openSSLError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "unknown error" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // "error:0A000086:SSL routines::certificate verify failed": the reason is the last part.
        return text.split(separator: ":", omittingEmptySubsequences: false).last.map(String.init) ?? text
    }

    /// Whether `name` is an IPv4 or IPv6 address rather than a host name.
    private static func isIPAddress(_ name: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }
}
