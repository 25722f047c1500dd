// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Where callers leave commands for a connection's thread, and how they wake it.
///
/// Callers on any thread submit requests and interrupts under a lock; the thread takes them all
/// at once. The wake pipe is written only when the thread has said it is about to wait, so a
/// busy connection costs one lock per request and no system call.
///
/// While the thread is parked in `poll` with a live connection and nothing left to write, a
/// caller writes its request's bytes to the socket itself, with a non-blocking `send` that
/// never waits: the thread then wakes once, for the reply, instead of once to write and once
/// more to read. Anything that does not go out whole that way is left to the thread.
final class RedisRequestQueue: Sendable {
    struct Request: Sendable {
        let id: UInt64
        /// The commands in the Redis protocol, ready to write; empty for a connection check.
        let encoded: [UInt8]
        /// The replies it waits for, one per command.
        let replyCount: Int
        /// The first command's name, for errors.
        let label: String
        /// Time the server may take beyond the command timeout (a blocking command's wait).
        let extraTime: Duration
        /// Fail at the first failed connection attempt instead of retrying (``RedisConnection/connect(_:name:)``).
        let failsFast: Bool
        /// Runs on the connection's thread with the replies or the failure: it must not block.
        let completion: Completion
    }

    typealias Completion = @Sendable (Result<[RedisReply], any Error>) -> Void

    /// A request a caller wrote to the socket while the thread was parked.
    struct Sent {
        let request: Request
        let at: ContinuousClock.Instant
    }

    /// What the thread finds when it leaves `poll`.
    struct Unparked {
        var sent: [Sent] = []
        /// The tail of the last request, which the socket did not take at once: it must be
        /// written before anything else.
        var remainder: [UInt8] = []
    }

    /// What the thread takes in one go.
    struct Work {
        var requests: [Request] = []
        var interrupted: Set<UInt64> = []
        var isClosed = false
    }

    private struct State {
        var work = Work()
        var nextID: UInt64 = 0
        /// Requests submitted and not finished, for ``isPending(_:)``.
        var pending: Set<UInt64> = []
        /// Interrupts that arrived before their request did.
        var earlyInterrupts: Set<UInt64> = []
        /// The server's id for the current connection (`CLIENT ID`), for `CLIENT UNBLOCK`.
        var clientID: Int?
        var threadIsWaiting = false
        /// The socket callers may write to while the thread is parked.
        var parkedSocket: Int32?
        var unparked = Unparked()
    }

    /// Larger requests go through the thread: a caller writes under the lock.
    static let largestCallerWrite = 64 << 10

    #if os(Linux)
        private static let callerWriteFlags = Int32(MSG_DONTWAIT | MSG_NOSIGNAL)
    #else
        private static let callerWriteFlags = Int32(MSG_DONTWAIT)
    #endif

    let wake = WakePipe()
    private let state = Mutex(State())

    func makeID() -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
    }

    /// Hands a request to the thread, or writes it to the socket when the thread is parked; fails
    /// it at once when the queue is closed or the request was interrupted before it got here.
    func submit(_ request: Request, endpoint: String) {
        enum Outcome {
            case queued(wake: Bool)
            case written, closed, interrupted
        }
        let outcome = state.withLock { state -> Outcome in
            if state.work.isClosed { return .closed }
            if state.earlyInterrupts.remove(request.id) != nil { return .interrupted }
            state.pending.insert(request.id)
            if let socket = state.parkedSocket, !request.encoded.isEmpty,
                request.encoded.count <= Self.largestCallerWrite
            {
                let written = request.encoded.withUnsafeBytes { bytes in
                    send(socket, bytes.baseAddress, bytes.count, Self.callerWriteFlags)
                }
                if written > 0 {
                    state.unparked.sent.append(Sent(request: request, at: ContinuousClock.now))
                    if written == request.encoded.count { return .written }
                    state.unparked.remainder = Array(request.encoded[written...])
                }
                // Whatever follows waits for the thread, behind what is already on its way.
                state.parkedSocket = nil
                if written > 0 {
                    defer { state.threadIsWaiting = false }
                    return .queued(wake: state.threadIsWaiting)
                }
            }
            state.work.requests.append(request)
            defer { state.threadIsWaiting = false }
            return .queued(wake: state.threadIsWaiting)
        }
        switch outcome {
        case .queued(let wake): if wake { self.wake.signal() }
        case .written: break
        case .closed: request.completion(.failure(IvyError(.closed, endpoint: endpoint)))
        case .interrupted: request.completion(.failure(CancellationError()))
        }
    }

    /// Asks the thread to abandon request `id`, dropping the connection if it is on the wire.
    func interrupt(_ id: UInt64) {
        let wake = state.withLock { state -> Bool in
            guard state.pending.contains(id) else {
                state.earlyInterrupts.insert(id)
                return false
            }
            state.work.interrupted.insert(id)
            defer { state.threadIsWaiting = false }
            return state.threadIsWaiting
        }
        if wake { self.wake.signal() }
    }

    func close() {
        state.withLock { $0.work.isClosed = true }
        wake.signal()
    }

    func isPending(_ id: UInt64) -> Bool {
        state.withLock { $0.pending.contains(id) }
    }

    var clientID: Int? {
        get { state.withLock { $0.clientID } }
        set { state.withLock { $0.clientID = newValue } }
    }

    // MARK: The thread's side

    /// Everything submitted since the last call. The thread waits on ``wake`` afterwards, so a
    /// later submission signals it.
    func take() -> Work {
        state.withLock { state in
            state.threadIsWaiting = true
            var work = Work(isClosed: state.work.isClosed)
            swap(&work.requests, &state.work.requests)
            swap(&work.interrupted, &state.work.interrupted)
            return work
        }
    }

    /// Lets callers write to `socket` until ``unpark()``, unless work is already waiting.
    /// Call right before `poll`, with nothing left to write on the connection.
    func park(socket: Int32) {
        state.withLock { state in
            if state.work.requests.isEmpty && state.work.interrupted.isEmpty && !state.work.isClosed {
                state.parkedSocket = socket
            }
        }
    }

    /// Ends the parking; returns what callers wrote meanwhile, in the order it went out.
    func unpark() -> Unparked {
        state.withLock { state in
            state.parkedSocket = nil
            defer { state.unparked = Unparked() }
            return state.unparked
        }
    }

    /// Forgets finished requests (``isPending(_:)`` turns false).
    func finished(_ ids: some Sequence<UInt64>) {
        state.withLock { state in
            for id in ids { state.pending.remove(id) }
        }
    }
}
