// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CMicroHTTPD
internal import Foundation
public import IvyCore
internal import Synchronization

/// An HTTP/1.1 server on GNU libmicrohttpd, for the dashboard and `/metrics`.
///
/// Each connection has a thread of libmicrohttpd's, on which the request is read and the
/// handler's answer awaited: the handler runs as a Swift task, never blocking the cooperative
/// pool. libmicrohttpd answers malformed requests (400) and headers past
/// ``Options/connectionMemory`` itself; a body past ``Options/maximumBodySize`` gets 413 before
/// the rest of it is read. The server stays up through both.
public final class HTTPServer: Sendable {
    /// Limits of one server.
    public struct Options: Sendable {
        /// The largest request body read; a larger one gets 413.
        public var maximumBodySize = 1 << 20
        /// Buffer space per connection, headers included: larger headers are refused.
        public var connectionMemory = 64 << 10
        /// How long a connection may stay idle.
        public var idleTimeout: Duration = .seconds(30)
        /// How many connections at once.
        public var connectionLimit = 64

        public init() {}
    }

    /// What the server answers with: runs as a task for each request.
    public typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    /// Where it listens, with the port the system chose where it was 0.
    public let address: ListenAddress
    private let daemon: Daemon
    private let closed = Atomic<Bool>(false)

    /// Listens on `address`.
    ///
    /// - Throws: `IvyError.Code.invalidConfiguration` for options out of range;
    ///   `IvyError.Code.connectionFailed` when the address cannot be bound (in use, say).
    public init(listeningOn address: ListenAddress, options: Options = Options(), handler: @escaping Handler)
        throws(IvyError)
    {
        try IvyError.check("HTTPServer.Options.maximumBodySize", options.maximumBodySize, in: 0...(1 << 30))
        try IvyError.check(
            "HTTPServer.Options.connectionMemory", options.connectionMemory, in: 4096...(16 << 20))
        try IvyError.check("HTTPServer.Options.connectionLimit", options.connectionLimit, in: 1...4096)
        try IvyError.check(
            "HTTPServer.Options.idleTimeout", options.idleTimeout, in: .seconds(1)...(.seconds(3600)))
        let context = Unmanaged.passRetained(HTTPServerContext(options: options, handler: handler))
        // No MHD_USE_ERROR_LOG: the library would write to stderr, past the process's logger.
        let flags = address.host.contains(":") ? UInt32(MHD_USE_IPv6.rawValue) : 0
        let started = address.withSocketAddress { socketAddress in
            ivy_mhd_start(
                flags, socketAddress, accessHandler, context.toOpaque(), requestCompleted,
                options.connectionMemory, UInt32(options.idleTimeout.components.seconds),
                UInt32(options.connectionLimit))
        }
        guard let started else {
            context.release()
            throw IvyError(
                .connectionFailed, endpoint: "http://\(address)",
                detail: "cannot listen there (in use, or not an address of this machine)")
        }
        daemon = Daemon(pointer: started, context: context)
        self.address = ListenAddress(host: address.host, port: Int(ivy_mhd_port(started)))
    }

    /// Stops listening, lets the requests under way finish, closes every connection, and
    /// returns then. The wait is on a thread of its own, not the cooperative pool's, where the
    /// handlers that it waits for run. A handler must not close its own server: it would wait
    /// for itself.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            daemon.stop { continuation.resume() }
        }
    }

    deinit {
        // Dropped without close(): stopped all the same, by a thread that nobody waits for.
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { daemon.stop {} }
    }
}

/// The daemon and its callbacks' context, which lives until the daemon has stopped.
private struct Daemon: @unchecked Sendable {
    let pointer: OpaquePointer
    let context: Unmanaged<HTTPServerContext>

    /// Stops the daemon on a new thread (stopping joins the connections' threads, whose handlers
    /// may need the cooperative pool to finish), then calls `done`.
    func stop(then done: @escaping @Sendable () -> Void) {
        Thread.detachNewThread {
            MHD_stop_daemon(pointer)
            context.release()
            done()
        }
    }
}
