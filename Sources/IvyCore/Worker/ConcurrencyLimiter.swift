// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Counts a worker's free execution slots; reservers wait for at least one.
///
/// A reserver takes every free slot it may use before it reserves, so the broker never hands
/// out more messages than the worker can start at once.
final class ConcurrencyLimiter: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: UInt64, maximum: Int, continuation: CheckedContinuation<Int, Never>)] = []
        var idleWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    let capacity: Int
    private let state: Mutex<State>

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        state = Mutex(State(free: capacity))
    }

    var inUse: Int { state.withLock { capacity - $0.free } }

    /// Waits until a slot is free, then takes up to `maximum` free slots and returns how many.
    /// Returns 0 when the calling task is cancelled.
    func acquire(upTo maximum: Int) async -> Int {
        precondition(maximum > 0)
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let granted: Int? = state.withLock { state in
                    if Task.isCancelled { return 0 }
                    if state.free > 0 && state.waiters.isEmpty {
                        let taken = min(maximum, state.free)
                        state.free -= taken
                        return taken
                    }
                    state.waiters.append((id, maximum, continuation))
                    return nil
                }
                if let granted { continuation.resume(returning: granted) }
            }
        } onCancel: {
            let cancelled = state.withLock { state in
                state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
            }
            cancelled?.resume(returning: 0)
        }
    }

    /// Gives `count` slots back and wakes waiters in arrival order.
    func release(_ count: Int) {
        guard count > 0 else { return }
        var resumptions: [(CheckedContinuation<Int, Never>, Int)] = []
        var idle: [CheckedContinuation<Void, Never>] = []
        state.withLock { state in
            state.free += count
            precondition(state.free <= capacity, "released more slots than were taken")
            while state.free > 0, !state.waiters.isEmpty {
                let waiter = state.waiters.removeFirst()
                let taken = min(waiter.maximum, state.free)
                state.free -= taken
                resumptions.append((waiter.continuation, taken))
            }
            if state.free == capacity {
                idle = Array(state.idleWaiters.values)
                state.idleWaiters.removeAll()
            }
        }
        for (continuation, taken) in resumptions { continuation.resume(returning: taken) }
        for continuation in idle { continuation.resume() }
    }

    /// Waits until every slot is free, or the calling task is cancelled.
    func waitUntilIdle() async {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let idle = state.withLock { state in
                    if state.free == capacity || Task.isCancelled { return true }
                    state.idleWaiters[id] = continuation
                    return false
                }
                if idle { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.idleWaiters.removeValue(forKey: id) }?.resume()
        }
    }
}
