// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Connections for blocking commands, one per concurrent waiter, made on demand and reused.
final class RedisConnectionPool: Sendable {
    private struct State {
        var idle: [RedisConnection] = []
        var all: [RedisConnection] = []
        var isClosed = false
    }

    private let configuration: RedisConfiguration
    private let name: String
    private let state = Mutex(State())

    init(configuration: RedisConfiguration, name: String) {
        self.configuration = configuration
        self.name = name
    }

    func withConnection<T: Sendable>(_ body: (RedisConnection) async throws -> T) async throws -> T {
        let connection = state.withLock { state -> RedisConnection in
            if let connection = state.idle.popLast() { return connection }
            let connection = RedisConnection(configuration: configuration, name: name)
            state.all.append(connection)
            return connection
        }
        defer {
            state.withLock { state in
                if !state.isClosed { state.idle.append(connection) }
            }
        }
        return try await body(connection)
    }

    func close() async {
        let connections = state.withLock { state in
            state.isClosed = true
            state.idle.removeAll()
            return state.all
        }
        for connection in connections { await connection.close() }
    }
}
