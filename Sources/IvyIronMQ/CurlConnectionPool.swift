// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Keep-alive connections to one server, each with its thread, opened as concurrency needs them.
///
/// A request goes to an idle connection, or to a new one while there are fewer than
/// `maximumConnections`, or else to the least busy: a long poll holds its connection for up to
/// 30 s, and acknowledgements must not queue behind it.
final class CurlConnectionPool: Sendable {
    private let state = Mutex<(connections: [CurlConnection], isClosed: Bool)>(([], false))
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

    deinit { close() }

    /// Performs `request` on a connection; `completion` runs on that connection's thread.
    func perform(
        _ request: HTTPRequest,
        completion: @escaping @Sendable (Result<HTTPResponse, CurlConnection.CurlError>) -> Void
    ) {
        let connection = state.withLock { state -> CurlConnection? in
            guard !state.isClosed else { return nil }
            let idle = state.connections.first { $0.inFlight.load(ordering: .relaxed) == 0 }
            if let idle { return idle }
            if state.connections.count < maximumConnections {
                let opened = CurlConnection(
                    name: "\(name)-\(state.connections.count)", connectTimeout: connectTimeout,
                    verifyTLS: verifyTLS)
                state.connections.append(opened)
                return opened
            }
            // All busy: the least busy of those not holding a long poll, if there is one.
            let candidates = state.connections.filter { $0.longPolls.load(ordering: .relaxed) == 0 }
            return (candidates.isEmpty ? state.connections : candidates).min {
                $0.inFlight.load(ordering: .relaxed) < $1.inFlight.load(ordering: .relaxed)
            }
        }
        guard let connection else {
            return completion(
                .failure(CurlConnection.CurlError(code: -1, description: "the client is closed")))
        }
        connection.perform(request, completion: completion)
    }

    /// Long polls handed to the connections and not yet answered (for tests).
    var longPollsInFlight: Int {
        state.withLock { $0.connections.reduce(0) { $0 + $1.longPolls.load(ordering: .relaxed) } }
    }

    /// Performs what is queued, then ends every connection's thread; later requests fail at once.
    func close() {
        let connections = state.withLock { state in
            state.isClosed = true
            return state.connections
        }
        for connection in connections { connection.close() }
    }
}
