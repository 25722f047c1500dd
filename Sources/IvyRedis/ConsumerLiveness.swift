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
/// A thread of its own, started with the first queue, submits a ``RedisStreamBackend/beat``
/// script per queue every `timeout / 4` (the script runs on the connection's thread; this one
/// only submits and sleeps), so tasks that hog the cooperative pool cannot make a live worker
/// look dead. The script frees the leases of every consumer whose liveness ran out before this
/// consumer's previous beat ran, as the server reported that beat's time: a killed worker's
/// messages come back within about `timeout` plus two beats, not after their visibility timeout,
/// while beats that waited through a stall of the server, or a restart, free nobody's work.
final class ConsumerLiveness: Sendable {
    private struct State {
        /// Per queue, the server time (µs) the last beat that got an answer ran at; "" for none.
        var queues: [QueueName: String] = [:]
        var beats = 0
        var hasThread = false
        var isClosed = false
    }

    private let connection: RedisConnection
    private let consumer: String
    private let timeout: Duration
    private let interval: Duration
    private let logger: any IvyLogger
    private let state = Mutex(State())
    private let wake = WakePipe()
    /// Fires when the thread has left its loop.
    private let exited = OneShot()

    /// Beats per liveness period.
    private static let beatsPerTimeout = 4
    /// Consumers from before liveness are swept once a minute (at the default beat).
    private static let beatsPerSweep = 60

    init(connection: RedisConnection, consumer: String, timeout: Duration, logger: any IvyLogger) {
        self.connection = connection
        self.consumer = consumer
        self.timeout = timeout
        interval = timeout / Self.beatsPerTimeout
        self.logger = logger
    }

    /// Announces the consumer on `queue` from now on; the first beat goes out at once.
    func join(_ queue: QueueName) {
        let (isNew, startThread) = state.withLock { state -> (Bool, Bool) in
            guard !state.isClosed, state.queues[queue] == nil else { return (false, false) }
            state.queues[queue] = ""
            defer { state.hasThread = true }
            return (true, !state.hasThread)
        }
        if startThread {
            DedicatedThread.start(name: "ivy-redis-beat") { [self] in run() }
        } else if isNew {
            wake.signal()
        }
    }

    /// Stops announcing and leaves every queue: deleted from its group, or marked for deletion
    /// once nothing is pending for it.
    func close() async {
        let (queues, hasThread) = state.withLock { state -> ([QueueName], Bool) in
            defer { state.isClosed = true }
            return (state.isClosed ? [] : Array(state.queues.keys), state.hasThread)
        }
        if hasThread {
            wake.signal()
            await exited.wait()
        }
        guard !queues.isEmpty else { return }
        await leave(queues)
    }

    /// Runs the `leave` scripts together and waits for their answers. Each is bounded by the
    /// connection, not by a timer of its own: a server that is down fails it at once and a stalled
    /// one within the command timeout, while a merely slow one (a loaded machine) still gets to
    /// delete the consumer before the connection closes under it.
    private func leave(_ queues: [QueueName]) async {
        await withDiscardingTaskGroup { group in
            for queue in queues {
                group.addTask { [connection, consumer, logger] in
                    let keys = RedisStreamBackend.Keys(queue)
                    do {
                        _ = try await connection.evaluate(
                            RedisStreamBackend.leave, keys: [keys.stream, keys.leases, keys.consumers],
                            arguments: [RedisStreamBackend.group, consumer]
                        ).checked(endpoint: connection.endpoint, command: RedisStreamBackend.leave.name)
                    } catch {
                        logger.debug(
                            "leaving the consumer group failed",
                            ["queue": queue.rawValue, "error": "\(error)"])
                    }
                }
            }
        }
    }

    // MARK: The thread

    private func run() {
        let milliseconds = Int32(clamping: interval.wholeMilliseconds)
        while true {
            let (queues, closed, sweep) = state.withLock { state in
                state.beats += 1
                return (state.queues, state.isClosed, state.beats % Self.beatsPerSweep == 0)
            }
            if closed { break }
            for (queue, previousBeat) in queues { beat(queue, previousBeat: previousBeat, sweep: sweep) }
            var fds = [pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, milliseconds) > 0 { wake.drain() }
        }
        exited.fire()
    }

    private func beat(_ queue: QueueName, previousBeat: String, sweep: Bool) {
        let keys = RedisStreamBackend.Keys(queue)
        connection.evaluate(
            RedisStreamBackend.beat, keys: [keys.stream, keys.leases, keys.consumers, keys.signal],
            arguments: [
                RedisStreamBackend.group, consumer, timeout.wholeMilliseconds, previousBeat, sweep ? 1 : 0,
            ]
        ) { [self] result in
            // On the connection's thread: only bookkeeping here.
            let reply = result.flatMap { reply in
                Result {
                    try reply.checked(endpoint: connection.endpoint, command: RedisStreamBackend.beat.name)
                }
            }
            switch reply {
            case .success(let reply):
                let parts = reply.array ?? []
                if parts.count == 2, let now = parts[1].text {
                    // A later time only: answers to beats that waited can come in any order.
                    state.withLock { state in
                        guard let known = state.queues[queue] else { return }
                        if known.isEmpty || (Double(now) ?? 0) > (Double(known) ?? 0) {
                            state.queues[queue] = now
                        }
                    }
                }
                if let count = parts.first?.integer, count > 0 {
                    logger.warning(
                        "a consumer stopped announcing itself; its reserved messages go to live ones",
                        ["queue": queue.rawValue, "messages": "\(count)"])
                }
            case .failure(let error):
                logger.debug("liveness beat failed", ["queue": queue.rawValue, "error": "\(error)"])
            }
        }
    }
}
