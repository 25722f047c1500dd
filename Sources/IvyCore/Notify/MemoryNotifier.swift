// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
internal import Synchronization

/// An in-process notifier (`memory://`): publish hands the payload to every subscriber of the
/// channel at once. It keeps call statuses (``TaskStatusStore``), leases (``ScheduleStore``) and
/// workers' announcements (``WorkerPresenceStore``) in process too.
public final class MemoryNotifier: Notifier, TaskStatusStore, ScheduleStore, WorkerPresenceStore {
    private struct Subscriber {
        var receive: @Sendable ([UInt8]) -> Void
        var finish: (@Sendable () -> Void)?
    }

    private struct State {
        var channels: [ChannelName: [UInt64: Subscriber]] = [:]
        var nextID: UInt64 = 0
        var isClosed = false
    }

    public let endpoint = "memory://"
    private let state = Mutex(State())
    private let statuses: StatusTable?
    private let leases = LeaseTable()
    private let presences = PresenceTable()

    /// How long statuses are kept unless a retention is given: a day, as Celery keeps results.
    public static let defaultStatusRetention = Duration.seconds(86_400)

    /// - Parameter statusRetention: How long a call's status is kept after its last change;
    ///   nil keeps none.
    public init(statusRetention: Duration? = defaultStatusRetention) {
        statuses = statusRetention.map(StatusTable.init(retention:))
    }

    public func publish(_ payload: [UInt8], to channel: ChannelName) throws(IvyError) {
        let subscribers = try state.withLock { (state) throws(IvyError) in
            guard !state.isClosed else { throw IvyError(.closed, endpoint: endpoint) }
            return state.channels[channel].map { Array($0.values) } ?? []
        }
        for subscriber in subscribers { subscriber.receive(payload) }
    }

    public func subscribe(to channel: ChannelName) throws(IvyError) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let id = try add(
            Subscriber(receive: { continuation.yield($0) }, finish: { continuation.finish() }), to: channel)
        continuation.onTermination = { [weak self] _ in self?.remove(id, from: channel) }
        return stream
    }

    public func subscribe(to channel: ChannelName, receive: @escaping @Sendable ([UInt8]) -> Void)
        throws(IvyError)
        -> NotifierSubscription
    {
        let id = try add(Subscriber(receive: receive, finish: nil), to: channel)
        return NotifierSubscription { [weak self] in self?.remove(id, from: channel) }
    }

    public func close() {
        let subscribers = state.withLock { state in
            state.isClosed = true
            defer { state.channels.removeAll() }
            return state.channels.values.flatMap(\.values)
        }
        for subscriber in subscribers { subscriber.finish?() }
    }

    private func add(_ subscriber: Subscriber, to channel: ChannelName) throws(IvyError) -> UInt64 {
        try state.withLock { (state) throws(IvyError) in
            guard !state.isClosed else { throw IvyError(.closed, endpoint: endpoint) }
            state.nextID += 1
            state.channels[channel, default: [:]][state.nextID] = subscriber
            return state.nextID
        }
    }

    private func remove(_ id: UInt64, from channel: ChannelName) {
        // Returned, so the closure is released after the lock: its captures may unsubscribe too.
        let removed = state.withLock { state in
            defer { if state.channels[channel]?.isEmpty == true { state.channels[channel] = nil } }
            return state.channels[channel]?.removeValue(forKey: id)
        }
        _ = removed
    }

    // MARK: Statuses

    public var statusRetention: Duration? { statuses?.retention }

    public func record(
        _ status: TaskStatus, completion: @escaping @Sendable (Result<TaskStatus.State, any Error>) -> Void
    ) {
        guard let statuses else { return completion(.failure(Self.noStatuses)) }
        completion(.success(statuses.record(status)))
    }

    public func publish(_ payload: [UInt8], to channel: ChannelName, recording status: TaskStatus)
        throws(IvyError)
    {
        _ = statuses?.record(status)
        try publish(payload, to: channel)
    }

    public func status(of id: String) throws(IvyError) -> TaskStatus {
        guard let statuses else { throw Self.noStatuses }
        return statuses.status(of: id)
    }

    public func cancel(_ id: String, reason: String) throws(IvyError) -> TaskStatus {
        guard let statuses else { throw Self.noStatuses }
        return statuses.cancel(id, reason: reason)
    }

    // MARK: Leases and ticks

    public func lease(_ name: String, holder: String, for duration: Duration) -> Bool {
        leases.lease(name, holder: holder, for: duration)
    }

    public func release(_ name: String, holder: String) {
        leases.release(name, holder: holder)
    }

    public func claim(_ tick: String, of task: String, at time: Date, for duration: Duration) -> Bool {
        leases.claim(tick, of: task, at: time, for: duration)
    }

    public func latestClaim(of task: String) -> Date? { leases.latestClaim(of: task) }

    // MARK: Workers' presence

    public func announce(_ presence: WorkerPresence, for lifetime: Duration) {
        presences.announce(presence, for: lifetime)
    }

    public func withdraw(_ id: String) { presences.withdraw(id) }

    public func presentWorkers() -> [WorkerPresence] { presences.present() }

    private static var noStatuses: IvyError {
        IvyError(.unsupportedBackend, endpoint: "memory://", detail: "this notifier keeps no statuses")
    }
}
