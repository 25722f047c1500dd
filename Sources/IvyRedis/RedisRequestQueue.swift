// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

/// Where callers leave commands for a connection's thread, and how they wake it.
///
/// Callers on any thread submit requests and interrupts under a lock; the thread takes them all
/// at once. The wake pipe is written only when the thread has said it is about to wait, so a
/// busy connection costs one lock per request and no system call.
final class RedisRequestQueue: Sendable {
    struct Request: Sendable {
        let id: UInt64
        let commands: [RedisCommand]
        /// Time the server may take beyond the command timeout (a blocking command's wait).
        let extraTime: Duration
        /// Fail at the first failed connection attempt instead of retrying (``RedisConnection/connect(_:name:)``).
        let failsFast: Bool
        let continuation: CheckedContinuation<[RedisReply], any Error>
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
    }

    let wake = WakePipe()
    private let state = Mutex(State())

    func makeID() -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
    }

    /// Hands a request to the thread; fails it at once when the queue is closed or the request
    /// was interrupted before it got here.
    func submit(_ request: Request, endpoint: String) {
        enum Outcome { case queued(wake: Bool), closed, interrupted }
        let outcome = state.withLock { state -> Outcome in
            if state.work.isClosed { return .closed }
            if state.earlyInterrupts.remove(request.id) != nil { return .interrupted }
            state.work.requests.append(request)
            state.pending.insert(request.id)
            defer { state.threadIsWaiting = false }
            return .queued(wake: state.threadIsWaiting)
        }
        switch outcome {
        case .queued(let wake): if wake { self.wake.signal() }
        case .closed: request.continuation.resume(throwing: IvyError(.closed, endpoint: endpoint))
        case .interrupted: request.continuation.resume(throwing: CancellationError())
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

    /// Forgets finished requests (``isPending(_:)`` turns false).
    func finished(_ ids: some Sequence<UInt64>) {
        state.withLock { state in
            for id in ids { state.pending.remove(id) }
        }
    }
}
