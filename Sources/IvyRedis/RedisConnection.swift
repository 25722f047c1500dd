// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Foundation

/// A connection to Redis that owns one OS thread: every hiredis call runs there (DESIGN.md §6).
///
/// Commands sent from many tasks at once go out together as one pipeline, so a busy connection
/// makes one round trip per batch rather than per command. A lost connection is re-established
/// by the next command, after a backoff that grows with consecutive failures (with jitter).
///
/// ```swift
/// let redis = try await RedisConnection.connect(RedisConfiguration(url: "redis://127.0.0.1:6390"))
/// let reply = try await redis.command(RedisCommand("PING"))
/// ```
public actor RedisConnection {
    private struct Request {
        var commands: [RedisCommand]
        var continuation: CheckedContinuation<[RedisReply], any Error>
    }

    public nonisolated let configuration: RedisConfiguration
    public nonisolated var endpoint: String { configuration.endpoint }

    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let wake = WakePipe()
    private var context: RedisContext?
    private var pending: [Request] = []
    private var flushScheduled = false
    private var consecutiveFailures = 0
    private var isClosed = false

    public init(configuration: RedisConfiguration, name: String = "ivy-redis") {
        self.configuration = configuration
        executor = ThreadExecutor(name: name)
    }

    deinit { executor.shutdown() }

    /// A connection that has connected and authenticated once, so bad addresses and
    /// credentials fail here with a clear error.
    public static func connect(_ configuration: RedisConfiguration, name: String = "ivy-redis") async throws
        -> RedisConnection
    {
        let connection = RedisConnection(configuration: configuration, name: name)
        try await connection.connectNow()
        return connection
    }

    private func connectNow() throws(IvyError) {
        _ = try connectedContext(attempts: 1)
    }

    /// Sends one command.
    public func command(_ command: RedisCommand) async throws -> RedisReply {
        try await send([command])[0]
    }

    /// Sends commands in order, pipelined with whatever else is queued, and returns their replies.
    public func send(_ commands: [RedisCommand]) async throws -> [RedisReply] {
        guard !isClosed else { throw IvyError(.closed, endpoint: endpoint) }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append(Request(commands: commands, continuation: continuation))
            if !flushScheduled {
                flushScheduled = true
                // Runs after the jobs already queued on this connection, which add their requests.
                Task { self.flush() }
            }
        }
    }

    private func flush() {
        flushScheduled = false
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        guard !batch.isEmpty else { return }
        do {
            let context = try connectedContext(attempts: 3)
            let replies = try context.pipeline(batch.flatMap(\.commands))
            var offset = 0
            for request in batch {
                request.continuation.resume(returning: Array(replies[offset..<offset + request.commands.count]))
                offset += request.commands.count
            }
        } catch {
            dropContext()
            for request in batch { request.continuation.resume(throwing: error) }
        }
    }

    /// Sends a command the server may hold (BLPOP, XREADGROUP BLOCK) for up to `wait`.
    ///
    /// Cancelling the calling task interrupts the wait at once (the socket is polled together
    /// with a wake pipe); the connection is then re-established by the next command.
    public func blockingCommand(_ command: RedisCommand, wait: Duration) async throws -> RedisReply {
        guard !isClosed else { throw IvyError(.closed, endpoint: endpoint) }
        let context = try connectedContext(attempts: 3)
        wake.drain()
        return try await withTaskCancellationHandler {
            do {
                return try context.interruptibleCommand(command, wake: wake, timeout: wait + configuration.commandTimeout)
            } catch {
                dropContext()
                throw error
            }
        } onCancel: {
            wake.signal()
        }
    }

    /// Closes the connection; queued and later commands fail with ``IvyError/Code/closed``.
    public nonisolated func close() async {
        wake.signal()
        await closeNow()
    }

    private func closeNow() {
        isClosed = true
        context = nil
        let batch = pending
        pending.removeAll()
        for request in batch { request.continuation.resume(throwing: IvyError(.closed, endpoint: endpoint)) }
    }

    // MARK: Connecting

    private func connectedContext(attempts: Int) throws(IvyError) -> RedisContext {
        if let context { return context }
        guard !isClosed else { throw IvyError(.closed, endpoint: endpoint) }
        var lastError = IvyError(.connectionFailed, endpoint: endpoint)
        for attempt in 0..<attempts {
            if consecutiveFailures > 0 || attempt > 0 {
                // Own thread, so sleeping here stalls only this connection's (failing) commands.
                Thread.sleep(forTimeInterval: backoff())
            }
            do {
                let context = try RedisContext(configuration)
                self.context = context
                consecutiveFailures = 0
                return context
            } catch {
                consecutiveFailures += 1
                lastError = error
                // Bad credentials will not get better by retrying.
                if error.detail?.hasPrefix("authentication failed") == true { break }
            }
        }
        throw lastError
    }

    /// 50 ms doubling per consecutive failure up to 2 s, each with ±50 % jitter.
    private func backoff() -> TimeInterval {
        let base = min(2.0, 0.05 * pow(2, Double(min(consecutiveFailures, 6))))
        return base * Double.random(in: 0.5...1.5)
    }

    private func dropContext() {
        context = nil
        consecutiveFailures = max(consecutiveFailures, 1)
    }
}
