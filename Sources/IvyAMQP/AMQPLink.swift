// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

/// The connection a backend uses now, made again when it is lost and replaced when it is old.
///
/// - **Reconnect.** When the broker closes the connection, a heartbeat goes missing or the
///   socket fails, the next caller opens a new one, no sooner than the ``ReconnectSchedule``
///   allows (a minimum interval, doubled after each failure, with jitter). Callers that come
///   while one is opening wait for it; one attempt serves them all.
/// - **Recycle.** A connection older than `recycleInterval` is replaced by a fresh one at the next
///   call (as taskcluster's Pulse does, so that no connection lives for ever), and retires: it
///   stays open for `retirementPeriod`, so that deliveries it made can still be settled, then
///   closes. Consumers move to the new connection when they next ask for one.
///
/// Every connection has a generation, one more than the last; ``connection(generation:)`` finds
/// the one that can settle a delivery, if it is still open. `onChange` is told when the
/// current connection is lost or retired, so that waiting consumers move at once.
final class AMQPLink: Sendable {
    private struct State {
        var current: AMQPConnection?
        var openedAt: ContinuousClock.Instant?
        var opening: Task<AMQPConnection, any Error>?
        var retiring: [UInt64: AMQPConnection] = [:]
        var generation: UInt64 = 0
        var schedule = ReconnectSchedule()
        /// The index in `configuration.nodes` of the node that answered last.
        var preferredNode = 0
        var isClosed = false
    }

    let configuration: AMQPConfiguration
    private let name: String
    private let logger: any IvyLogger
    private let onChange: @Sendable () -> Void
    private let state = Mutex(State())

    init(
        configuration: AMQPConfiguration, name: String, logger: any IvyLogger,
        onChange: @escaping @Sendable () -> Void
    ) {
        self.configuration = configuration
        self.name = name
        self.logger = logger
        self.onChange = onChange
    }

    /// The current connection, opened (or replaced) first when need be.
    ///
    /// - Throws: ``IvyError/Code/closed`` once the link is closed; the connection's errors when
    ///   opening fails (``IvyError/Code/connectionFailed``: broker away, user or vhost refused).
    func connection() async throws(IvyError) -> AMQPConnection {
        let now = ContinuousClock.now
        let (ready, opening, retired) = try state.withLock { state throws(IvyError) in
            guard !state.isClosed else { throw IvyError(.closed, endpoint: configuration.endpoint) }
            var retired: AMQPConnection?
            if let current = state.current, let openedAt = state.openedAt {
                if !current.isAlive {
                    state.current = nil
                } else if configuration.recycleInterval > .zero,
                    now - openedAt >= configuration.recycleInterval
                {
                    state.current = nil
                    state.retiring[current.generation] = current
                    retired = current
                } else {
                    return (current, nil, nil)
                        as (AMQPConnection?, Task<AMQPConnection, any Error>?, AMQPConnection?)
                }
            }
            if let opening = state.opening { return (nil, opening, retired) }
            state.generation += 1
            let opening = open(
                generation: state.generation, after: state.schedule.nextAttempt(random: .random(in: 0..<1)))
            state.opening = opening
            return (nil, opening, retired)
        }
        if let retired { retire(retired) }
        if let ready { return ready }
        do {
            return try await opening!.value
        } catch let error as IvyError {
            throw error
        } catch {
            throw IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: "\(error)")
        }
    }

    /// The open connection of that generation, current or retiring; nil when it is gone.
    func connection(generation: UInt64) -> AMQPConnection? {
        state.withLock { state in
            if let current = state.current, current.generation == generation {
                return current.isAlive ? current : nil
            }
            return state.retiring[generation].flatMap { $0.isAlive ? $0 : nil }
        }
    }

    /// The current connection's generation, when one is open.
    var currentGeneration: UInt64? {
        state.withLock { state in state.current.flatMap { $0.isAlive ? $0.generation : nil } }
    }

    /// Closes every connection; later calls throw ``IvyError/Code/closed``.
    func close() async {
        let (connections, opening) = state.withLock { state in
            state.isClosed = true
            defer {
                state.current = nil
                state.retiring = [:]
                state.opening = nil
            }
            return ([state.current].compactMap { $0 } + state.retiring.values, state.opening)
        }
        opening?.cancel()
        if let opened = try? await opening?.value { await opened.close() }
        for connection in connections { await connection.close() }
    }

    // MARK: Opening and retiring

    private func open(generation: UInt64, after earliest: ContinuousClock.Instant?) -> Task<
        AMQPConnection, any Error
    > {
        Task { [self] in
            if let earliest, earliest > .now { try await Task.sleep(until: earliest) }
            state.withLock { $0.schedule.attempted(at: .now) }
            do {
                let connection = try await openAnyNode(generation: generation)
                let closedMeanwhile = state.withLock { state in
                    state.opening = nil
                    state.schedule.succeeded()
                    guard !state.isClosed else { return true }
                    state.current = connection
                    state.openedAt = .now
                    return false
                }
                if closedMeanwhile {
                    await connection.close()
                    throw IvyError(.closed, endpoint: configuration.endpoint)
                }
                if generation > 1 {
                    logger.info("connected to the broker again", ["endpoint": configuration.endpoint])
                }
                return connection
            } catch {
                state.withLock { state in
                    state.opening = nil
                    state.schedule.failed()
                }
                throw error
            }
        }
    }

    /// Connects to the node that answered last, else to the others in turn (a cluster's
    /// `failover` nodes); the last node's error when none answers.
    private func openAnyNode(generation: UInt64) async throws(IvyError) -> AMQPConnection {
        let nodes = configuration.nodes
        let first = state.withLock { $0.preferredNode } % nodes.count
        var failure: IvyError?
        for offset in 0..<nodes.count {
            let index = (first + offset) % nodes.count
            do {
                let connection = try await AMQPConnection.open(
                    nodes.count == 1 ? configuration : configuration.at(nodes[index]),
                    name: "\(name)-\(generation)", generation: generation
                ) { [self] error in lost(generation: generation, error: error) }
                state.withLock { $0.preferredNode = index }
                if offset > 0 {
                    logger.warning(
                        "connected to another node of the cluster",
                        ["endpoint": connection.endpoint, "after": failure.map { "\($0)" } ?? ""])
                }
                return connection
            } catch {
                failure = error
                // Credentials and vhosts are the cluster's: another node would refuse them too.
                if error.detail?.contains("ACCESS_REFUSED") == true || error.code != .connectionFailed {
                    throw error
                }
            }
        }
        throw failure!
    }

    /// The broker or the network ended connection `generation`.
    private func lost(generation: UInt64, error: IvyError) {
        let wasCurrent = state.withLock { state in
            state.retiring[generation] = nil
            guard state.current?.generation == generation else { return false }
            state.current = nil
            return true
        }
        if wasCurrent {
            logger.warning(
                "lost the connection to the broker; reconnecting",
                ["endpoint": configuration.endpoint, "error": "\(error)"])
            onChange()
        }
    }

    /// Lets a replaced connection settle its deliveries for the retirement period, then closes it.
    private func retire(_ connection: AMQPConnection) {
        onChange()
        let period = configuration.retirementPeriod
        Task { [self] in
            try? await Task.sleep(for: period)
            state.withLock { state in _ = state.retiring.removeValue(forKey: connection.generation) }
            await connection.close()
        }
    }
}
