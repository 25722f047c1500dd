// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CHiredis
internal import Foundation
internal import IvyCore
internal import IvyRedis
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#endif

/// One pub/sub connection on its own thread, shared by every subscription of a notifier.
///
/// The thread polls the socket together with a wake pipe: messages are handed to the channel's
/// subscribers as they arrive, and subscription changes (or closing) wake it at once. When the
/// connection drops it reconnects with backoff and subscribes again to every channel in use.
final class RedisSubscriber: Sendable {
    /// Where one subscription's messages go, on the subscriber's thread.
    private struct Sink {
        var receive: @Sendable ([UInt8]) -> Void
        var finish: (@Sendable () -> Void)?
    }

    private struct Shared {
        var sinks: [String: [UInt64: Sink]] = [:]
        /// Subscribers waiting for the server to confirm their channel.
        var confirming: [String: [CheckedContinuation<Void, any Error>]] = [:]
        /// Channels the server has confirmed on the current connection.
        var confirmed: Set<String> = []
        var nextID: UInt64 = 0
        var isClosed = false
    }

    private let configuration: RedisConfiguration
    private let shared = Mutex(Shared())
    private let wake = WakePipe()
    private let logger: any IvyLogger
    /// Called, on the subscriber's thread, for each channel subscribed again after a lost
    /// connection: messages published meanwhile never reached it.
    private let onResubscribed: (@Sendable (String, RedisSubscriber) -> Void)?

    init(
        configuration: RedisConfiguration, logger: any IvyLogger,
        onResubscribed: (@Sendable (String, RedisSubscriber) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.onResubscribed = onResubscribed
        DedicatedThread.start(name: "ivy-redis-sub") { [self] in run() }
    }

    /// Hands `payloads` to `channel`'s subscribers as if they had just arrived.
    func deliver(_ payloads: [[UInt8]], on channel: String) {
        let sinks = shared.withLock { $0.sinks[channel].map { Array($0.values) } ?? [] }
        for sink in sinks {
            for payload in payloads { sink.receive(payload) }
        }
    }

    /// Hands one arriving message to `channel`'s subscribers.
    private func deliver(_ payload: [UInt8], on channel: String) {
        // Nearly always one subscriber (the producer): taken without copying the table.
        let (only, several) = shared.withLock { shared -> (Sink?, [Sink]) in
            guard let sinks = shared.sinks[channel] else { return (nil, []) }
            return sinks.count == 1 ? (sinks.first!.value, []) : (nil, Array(sinks.values))
        }
        only?.receive(payload)
        for sink in several { sink.receive(payload) }
    }

    /// A stream of `channel`'s messages, returned once the server confirmed the subscription.
    func subscribe(to channel: String) async throws -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let id = try await add(Sink(receive: { continuation.yield($0) }, finish: { continuation.finish() }), to: channel)
        continuation.onTermination = { [weak self] _ in self?.remove(id, from: channel) }
        return stream
    }

    /// Calls `receive` with each of `channel`'s messages, on this thread, once the server
    /// confirmed the subscription.
    func subscribe(to channel: String, receive: @escaping @Sendable ([UInt8]) -> Void) async throws
        -> NotifierSubscription
    {
        let id = try await add(Sink(receive: receive, finish: nil), to: channel)
        return NotifierSubscription { [weak self] in self?.remove(id, from: channel) }
    }

    private func add(_ sink: Sink, to channel: String) async throws -> UInt64 {
        let id = try shared.withLock { (shared) throws(IvyError) -> UInt64 in
            guard !shared.isClosed else { throw IvyError(.closed, endpoint: configuration.endpoint) }
            shared.nextID += 1
            shared.sinks[channel, default: [:]][shared.nextID] = sink
            return shared.nextID
        }
        do {
            try await withCheckedThrowingContinuation { (confirmation: CheckedContinuation<Void, any Error>) in
                let alreadyConfirmed = shared.withLock { shared in
                    if shared.confirmed.contains(channel) { return true }
                    shared.confirming[channel, default: []].append(confirmation)
                    return false
                }
                if alreadyConfirmed { confirmation.resume() } else { wake.signal() }
            }
        } catch {
            remove(id, from: channel)
            throw error
        }
        return id
    }

    private func remove(_ id: UInt64, from channel: String) {
        // The sink is released after the lock: its captures may unsubscribe too.
        let (lastOne, removed) = shared.withLock { shared -> (Bool, Sink?) in
            let removed = shared.sinks[channel]?.removeValue(forKey: id)
            guard shared.sinks[channel]?.isEmpty == true else { return (false, removed) }
            shared.sinks[channel] = nil
            return (true, removed)
        }
        _ = removed
        if lastOne { wake.signal() }
    }

    func close() {
        let (sinks, confirming) = shared.withLock { shared in
            shared.isClosed = true
            defer {
                shared.sinks.removeAll()
                shared.confirming.removeAll()
            }
            return (shared.sinks.values.flatMap(\.values), shared.confirming.values.flatMap { $0 })
        }
        for sink in sinks { sink.finish?() }
        for waiter in confirming { waiter.resume(throwing: IvyError(.closed, endpoint: configuration.endpoint)) }
        wake.signal()
    }

    // MARK: The thread

    private func run() {
        var context: RedisContext?
        var subscribed: Set<String> = []
        var failures = 0
        var hasConnected = false
        /// Channels to hand to `onResubscribed` once the server confirms them again.
        var missedWhileAway: Set<String> = []
        while !shared.withLock({ $0.isClosed }) {
            if context == nil {
                do {
                    context = try RedisContext(configuration)
                    if hasConnected { missedWhileAway = shared.withLock { Set($0.sinks.keys) } }
                    hasConnected = true
                    subscribed = []
                    if failures > 0 { logger.info("notifier reconnected", ["endpoint": configuration.endpoint]) }
                    failures = 0
                } catch {
                    failures += 1
                    failConfirmations(with: error)
                    if failures == 1 {
                        logger.warning("notifier connection lost; reconnecting", ["endpoint": configuration.endpoint, "error": "\(error)"])
                    }
                    waitForWake(milliseconds: Int32(min(2000, 50 << min(failures, 6))))
                    continue
                }
            }
            guard let connection = context else { continue }
            do {
                let wanted = shared.withLock { Set($0.sinks.keys) }
                var commands: [RedisCommand] = []
                let joining = wanted.subtracting(subscribed).sorted()
                let leaving = subscribed.subtracting(wanted).sorted()
                if !joining.isEmpty { commands.append(RedisCommand(arguments: [Array("SUBSCRIBE".utf8)] + joining.map { Array($0.utf8) })) }
                if !leaving.isEmpty { commands.append(RedisCommand(arguments: [Array("UNSUBSCRIBE".utf8)] + leaving.map { Array($0.utf8) })) }
                if !commands.isEmpty { try connection.write(commands) }
                subscribed = wanted
                var fds = [
                    pollfd(fd: connection.fileDescriptor, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0),
                ]
                guard poll(&fds, 2, -1) >= 0 || errno == EINTR else {
                    throw IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: "poll failed")
                }
                if fds[1].revents != 0 { wake.drain() }
                if fds[0].revents != 0 {
                    for reply in try connection.readAvailable() {
                        if let channel = handle(reply), missedWhileAway.remove(channel) != nil {
                            onResubscribed?(channel, self)
                        }
                    }
                }
            } catch {
                logger.warning("notifier connection lost; reconnecting", ["endpoint": configuration.endpoint, "error": "\(error)"])
                context = nil
                shared.withLock { $0.confirmed.removeAll() }
                failures = 1
            }
        }
    }

    /// Handles one pushed reply; returns the channel when it confirms a subscription.
    private func handle(_ reply: RedisReply) -> String? {
        guard let parts = reply.array, parts.count == 3, let kind = parts[0].text, let channel = parts[1].text else {
            return nil
        }
        switch kind {
        case "message":
            if let payload = parts[2].bytes { deliver(payload, on: channel) }
        case "subscribe":
            let waiters = shared.withLock { shared in
                shared.confirmed.insert(channel)
                return shared.confirming.removeValue(forKey: channel) ?? []
            }
            for waiter in waiters { waiter.resume() }
            return channel
        case "unsubscribe":
            shared.withLock { _ = $0.confirmed.remove(channel) }
        default:
            break
        }
        return nil
    }

    private func failConfirmations(with error: any Error) {
        let waiters = shared.withLock { shared in
            defer { shared.confirming.removeAll() }
            return shared.confirming.values.flatMap { $0 }
        }
        for waiter in waiters { waiter.resume(throwing: error) }
        // Their sinks stay registered until each subscriber that gave up removes its own.
    }

    /// Sleeps for a backoff, or less if woken (a close).
    private func waitForWake(milliseconds: Int32) {
        var fds = [pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)]
        if poll(&fds, 1, milliseconds) > 0 { wake.drain() }
    }
}
