// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// An in-process notifier (`memory://`): publish hands the payload to every subscriber of the
/// channel at once.
public final class MemoryNotifier: Notifier {
    private struct State {
        var channels: [String: [UInt64: AsyncStream<[UInt8]>.Continuation]] = [:]
        var nextID: UInt64 = 0
        var isClosed = false
    }

    public let endpoint = "memory://"
    private let state = Mutex(State())

    public init() {}

    public func publish(_ payload: [UInt8], to channel: String) throws(IvyError) {
        let subscribers = try state.withLock { (state) throws(IvyError) in
            guard !state.isClosed else { throw IvyError(.closed, endpoint: endpoint) }
            return state.channels[channel].map { Array($0.values) } ?? []
        }
        for subscriber in subscribers { subscriber.yield(payload) }
    }

    public func subscribe(to channel: String) throws(IvyError) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let id = try state.withLock { (state) throws(IvyError) in
            guard !state.isClosed else { throw IvyError(.closed, endpoint: endpoint) }
            state.nextID += 1
            state.channels[channel, default: [:]][state.nextID] = continuation
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                state.channels[channel]?[id] = nil
                if state.channels[channel]?.isEmpty == true { state.channels[channel] = nil }
            }
        }
        return stream
    }

    public func close() {
        let subscribers = state.withLock { state in
            state.isClosed = true
            defer { state.channels.removeAll() }
            return state.channels.values.flatMap(\.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
