// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Fans events out to an observer that counts them (a worker's metrics), then to every current
/// subscriber.
final class EventBroadcaster: Sendable {
    private struct State {
        var subscribers: [UInt64: AsyncStream<IvyEvent>.Continuation] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Told of every event, on the emitter's thread, before the subscribers.
    private let observer: (@Sendable (IvyEvent) -> Void)?

    init(observer: (@Sendable (IvyEvent) -> Void)? = nil) {
        self.observer = observer
    }

    /// A new stream of every event emitted from now on, until the subscriber stops iterating
    /// or ``finish()`` is called.
    func subscribe(bufferingNewest limit: Int) -> AsyncStream<IvyEvent> {
        let (stream, continuation) = AsyncStream<IvyEvent>.makeStream(
            bufferingPolicy: .bufferingNewest(limit))
        let id = state.withLock { state in
            state.nextID += 1
            state.subscribers[state.nextID] = continuation
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    func emit(_ event: @autoclosure () -> IvyEvent) {
        let subscribers = state.withLock { $0.subscribers.isEmpty ? [] : Array($0.subscribers.values) }
        guard observer != nil || !subscribers.isEmpty else { return }
        let event = event()
        observer?(event)
        for subscriber in subscribers { subscriber.yield(event) }
    }

    func finish() {
        let subscribers = state.withLock { state in
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
