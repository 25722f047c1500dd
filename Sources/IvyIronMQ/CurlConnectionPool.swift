// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Keep-alive connections to one server, each with its thread, opened as concurrency needs them.
///
/// A request goes to an idle connection, or to a new one while there are fewer than
/// `maximumConnections`, or else to the least busy: a long poll holds its connection for up to
/// 30 s, and acknowledgements must not queue behind it.
final class CurlConnectionPool: Sendable {
    private let connections = Mutex<[CurlConnection]>([])
    private let name: String
    private let maximumConnections: Int
    private let connectTimeout: Duration
    private let verifyTLS: Bool

    init(name: String, maximumConnections: Int, connectTimeout: Duration, verifyTLS: Bool) {
        self.name = name
        self.maximumConnections = maximumConnections
        self.connectTimeout = connectTimeout
        self.verifyTLS = verifyTLS
    }

    /// Performs `request` on a connection; `completion` runs on that connection's thread.
    func perform(
        _ request: HTTPRequest,
        completion: @escaping @Sendable (Result<HTTPResponse, CurlConnection.CurlError>) -> Void
    ) {
        let connection = connections.withLock { connections in
            let leastBusy = connections.min {
                $0.inFlight.load(ordering: .relaxed) < $1.inFlight.load(ordering: .relaxed)
            }
            if let leastBusy,
                leastBusy.inFlight.load(ordering: .relaxed) == 0 || connections.count >= maximumConnections
            {
                return leastBusy
            }
            let opened = CurlConnection(
                name: "\(name)-\(connections.count)", connectTimeout: connectTimeout, verifyTLS: verifyTLS)
            connections.append(opened)
            return opened
        }
        connection.perform(request, completion: completion)
    }

    func close() {
        for connection in connections.withLock({ $0 }) { connection.close() }
    }
}
