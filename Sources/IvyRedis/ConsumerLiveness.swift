// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#endif

/// Keeps one consumer announced as alive on every queue it reserves from, and through those
/// announcements frees the reservations of consumers that stopped announcing (a killed worker).
///
/// A thread of its own submits a ``RedisStreamBackend/beat`` script per queue every
/// `timeout / 4` (the script runs on the connection's thread; this one only submits and sleeps),
/// so tasks that hog the cooperative pool cannot make a live worker look dead. A consumer whose
/// liveness ran out has its leases expired by the next beat of a live consumer, which reserves
/// them straight away: a killed worker's messages come back within about `timeout` plus a beat,
/// not after their visibility timeout. A consumer reaps only after its own beats succeeded for a
/// whole `timeout`, so that after a Redis restart, or any outage every consumer saw, live
/// consumers get the time to announce themselves again before anyone is taken for dead.
final class ConsumerLiveness: Sendable {
    private struct State {
        /// Per queue, beats in a row that succeeded.
        var queues: [String: Int] = [:]
        var beats = 0
        var isClosed = false
        /// Whether the thread has left its loop, and who waits for that.
        var hasExited = false
        var onExit: CheckedContinuation<Void, Never>?
    }

    private let connection: RedisConnection
    private let consumer: String
    private let timeout: Duration
    private let interval: Duration
    private let logger: any IvyLogger
    private let state = Mutex(State())
    private let wake = WakePipe()

    /// Beats in a row that make a whole liveness period.
    private static let beatsPerTimeout = 4
    /// Consumers from before liveness are swept once a minute (at the default beat).
    private static let beatsPerSweep = 60

    init(connection: RedisConnection, consumer: String, timeout: Duration, logger: any IvyLogger) {
        self.connection = connection
        self.consumer = consumer
        self.timeout = timeout
        interval = timeout / Self.beatsPerTimeout
        self.logger = logger
        DedicatedThread.start(name: "ivy-redis-beat") { [self] in run() }
    }

    /// Announces the consumer on `queue` from now on; the first beat goes out at once.
    func join(_ queue: String) {
        let isNew = state.withLock { state in
            guard !state.isClosed, state.queues[queue] == nil else { return false }
            state.queues[queue] = 0
            return true
        }
        if isNew { wake.signal() }
    }

    /// Stops announcing and leaves every queue: deleted from its group, or marked for deletion
    /// once nothing is pending for it.
    func close() async {
        let queues = state.withLock { state -> [String] in
            guard !state.isClosed else { return [] }
            state.isClosed = true
            return Array(state.queues.keys)
        }
        await withCheckedContinuation { continuation in
            let exited = state.withLock { state in
                if !state.hasExited { state.onExit = continuation }
                return state.hasExited
            }
            if exited { continuation.resume() } else { wake.signal() }
        }
        for queue in queues {
            let keys = RedisStreamBackend.Keys(queue)
            do {
                _ = try await connection.evaluate(
                    RedisStreamBackend.leave, keys: [keys.stream, keys.consumers],
                    arguments: [RedisStreamBackend.group, consumer]
                ).checked(endpoint: connection.endpoint, command: RedisStreamBackend.leave.name)
            } catch {
                logger.debug("leaving the consumer group failed", ["queue": queue, "error": "\(error)"])
            }
        }
    }

    // MARK: The thread

    private func run() {
        let milliseconds = Int32(clamping: interval.wholeMilliseconds)
        while true {
            let (streaks, closed, sweep) = state.withLock { state in
                state.beats += 1
                return (state.queues, state.isClosed, state.beats % Self.beatsPerSweep == 0)
            }
            if closed { break }
            for (queue, streak) in streaks { beat(queue, mayReap: streak >= Self.beatsPerTimeout, sweep: sweep) }
            var fds = [pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, milliseconds) > 0 { wake.drain() }
        }
        let waiter = state.withLock { state in
            state.hasExited = true
            defer { state.onExit = nil }
            return state.onExit
        }
        waiter?.resume()
    }

    private func beat(_ queue: String, mayReap: Bool, sweep: Bool) {
        let keys = RedisStreamBackend.Keys(queue)
        connection.evaluate(
            RedisStreamBackend.beat, keys: [keys.stream, keys.leases, keys.consumers, keys.signal],
            arguments: [RedisStreamBackend.group, consumer, timeout.wholeMilliseconds, mayReap ? 1 : 0, sweep ? 1 : 0]
        ) { [self] result in
            // On the connection's thread: only bookkeeping here.
            let reply = result.flatMap { reply in
                Result { try reply.checked(endpoint: connection.endpoint, command: RedisStreamBackend.beat.name) }
            }
            state.withLock { state in
                guard state.queues[queue] != nil else { return }
                if case .success = reply { state.queues[queue]! += 1 } else { state.queues[queue] = 0 }
            }
            switch reply {
            case .success(let expired):
                if let count = expired.integer, count > 0 {
                    logger.warning(
                        "a consumer stopped announcing itself; its reserved messages go to live ones",
                        ["queue": queue, "messages": "\(count)"])
                }
            case .failure(let error):
                logger.debug("liveness beat failed", ["queue": queue, "error": "\(error)"])
            }
        }
    }
}
