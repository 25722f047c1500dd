// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

/// The connection a backend uses now, made again when it is lost and replaced when it is old
/// (``AMQPLinkState`` decides; this class opens, waits and closes).
///
/// - **Reconnect.** When the broker closes the connection, a heartbeat goes missing or the
///   socket fails, the next caller opens a new one, no sooner than the ``ReconnectSchedule``
///   allows (a minimum interval, doubled after each failure, with jitter), trying the URL's
///   node and then its `failover` nodes. Callers that come meanwhile wait for that attempt, each
///   no longer than its own deadline, and a cancellable one no longer than its task.
/// - **Recycle.** A connection older than `recycleInterval` is replaced by a fresh one at the next
///   call (as taskcluster's Pulse does, so that no connection lives for ever), and retires: it
///   stays open for `retirementPeriod`, and after that for as long as `isInUse` says deliveries
///   it made are still held, then closes. Consumers move to the new connection when they next
///   ask for one.
///
/// `onChange` is told when the current connection is lost or retired, so that waiting consumers
/// move at once.
final class AMQPLink: Sendable {
    private struct Shared {
        var link: AMQPLinkState<AMQPConnection>
        var waiters: [UInt64: CheckedContinuation<Result<AMQPConnection, IvyError>, Never>] = [:]
        var timers: [UInt64: Task<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        /// Callers given an id that have not had their answer, and those of them abandoned
        /// (cancelled or past their deadline) before they registered.
        var unanswered: Set<UInt64> = []
        var abandoned: [UInt64: IvyError] = [:]
        var opening: Task<Void, Never>?
        /// The tasks that close retired connections, ended by ``close()``.
        var retirements: [UInt64: Task<Void, Never>] = [:]
        var lastFailure: IvyError?
    }

    let configuration: AMQPConfiguration
    private let name: String
    private let logger: any IvyLogger
    private let onChange: @Sendable () -> Void
    private let isInUse: @Sendable (UInt64) -> Bool
    private let shared: Mutex<Shared>

    init(
        configuration: AMQPConfiguration, name: String, logger: any IvyLogger,
        onChange: @escaping @Sendable () -> Void, isInUse: @escaping @Sendable (UInt64) -> Bool
    ) {
        self.configuration = configuration
        self.name = name
        self.logger = logger
        self.onChange = onChange
        self.isInUse = isInUse
        shared = Mutex(Shared(link: AMQPLinkState(recycleInterval: configuration.recycleInterval)))
    }

    /// The current connection, opened (or replaced) first when need be.
    ///
    /// - Parameters:
    ///   - deadline: How long to wait for a connection being opened; nil: as long as it takes.
    ///   - cancellable: Whether cancelling the calling task ends the wait.
    /// - Throws: ``IvyError/Code/closed`` once the link is closed; ``IvyError/Code/connectionFailed``
    ///   when opening fails (broker away, user or vhost refused), when the deadline passes
    ///   first, or when the task is cancelled.
    func connection(until deadline: ContinuousClock.Instant? = nil, cancellable: Bool = false)
        async throws(IvyError) -> AMQPConnection
    {
        let now = ContinuousClock.now
        if let ready = shared.withLock({ $0.link.usable(now: now, isAlive: { $0.isAlive }) }) { return ready }
        let id = shared.withLock { shared in
            shared.nextWaiter += 1
            shared.unanswered.insert(shared.nextWaiter)
            return shared.nextWaiter
        }
        let result: Result<AMQPConnection, IvyError>
        if cancellable {
            result = await withTaskCancellationHandler {
                await answer(id, until: deadline)
            } onCancel: {
                abandon(id, with: failed("cancelled while waiting for a connection to the broker"))
            }
        } else {
            result = await answer(id, until: deadline)
        }
        return try result.get()
    }

    /// Replaces connection `generation` with a new one at the next call, as a recycle does: for
    /// a connection the broker keeps refusing publishes on (RabbitMQ 3.10's channels can stay
    /// on a quorum queue's dead leader after a node of the cluster died).
    func replace(generation: UInt64) {
        if let connection = shared.withLock({ $0.link.replace(generation: generation) }) {
            logger.warning(
                "the broker refuses what this connection sends; replacing it",
                ["endpoint": connection.endpoint, "generation": "\(generation)"])
            retire(connection, generation: generation)
        }
    }

    /// The open connection of that generation, current or retiring; nil when it is gone.
    func connection(generation: UInt64) -> AMQPConnection? {
        shared.withLock { $0.link.connection(generation: generation) }.flatMap { $0.isAlive ? $0 : nil }
    }

    /// The current connection's generation, when one is open.
    var currentGeneration: UInt64? {
        shared.withLock { shared in
            shared.link.currentGeneration.flatMap { shared.link.connection(generation: $0) }
        }.flatMap { $0.isAlive ? $0.generation : nil }
    }

    /// Closes every connection; later calls, and callers waiting, get ``IvyError/Code/closed``.
    func close() async {
        let (connections, waiters, timers, opening) = shared.withLock { shared in
            let connections = shared.link.close()
            defer {
                shared.waiters = [:]
                shared.timers = [:]
                shared.retirements = [:]
            }
            return (
                connections, shared.waiters.values, Array(shared.timers.values) + shared.retirements.values,
                shared.opening
            )
        }
        for timer in timers { timer.cancel() }
        for waiter in waiters {
            waiter.resume(returning: .failure(IvyError(.closed, endpoint: configuration.endpoint)))
        }
        opening?.cancel()
        await opening?.value
        for connection in connections { await connection.close() }
    }

    // MARK: Waiting

    private func answer(_ id: UInt64, until deadline: ContinuousClock.Instant?) async -> Result<
        AMQPConnection, IvyError
    > {
        await withCheckedContinuation { continuation in
            let now = ContinuousClock.now
            let (immediate, outcome) = shared.withLock {
                shared -> (Result<AMQPConnection, IvyError>?, AMQPLinkState<AMQPConnection>.Outcome?) in
                if let error = shared.abandoned.removeValue(forKey: id) {
                    shared.unanswered.remove(id)
                    return (.failure(error), nil)
                }
                let outcome = shared.link.request(
                    now: now, isAlive: { $0.isAlive }, random: .random(in: 0..<1))
                switch outcome.decision {
                case .use(let connection):
                    shared.unanswered.remove(id)
                    return (.success(connection), outcome)
                case .closed:
                    shared.unanswered.remove(id)
                    return (.failure(IvyError(.closed, endpoint: configuration.endpoint)), outcome)
                case .wait(let open):
                    shared.waiters[id] = continuation
                    // Stored with the decision, so that a close cannot come between the two.
                    if let open {
                        shared.opening = opening(generation: open.generation, notBefore: open.notBefore)
                    }
                    if let deadline {
                        shared.timers[id] = Task { [weak self] in
                            try? await Task.sleep(until: deadline)
                            guard !Task.isCancelled, let self else { return }
                            abandon(id, with: deadlinePassed())
                        }
                    }
                    return (nil, outcome)
                }
            }
            if let outcome { carryOut(outcome) }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// Gives a waiting caller `error`, or keeps it for one that has not registered yet.
    private func abandon(_ id: UInt64, with error: IvyError) {
        let (waiter, timer) = shared.withLock { shared in
            guard let waiter = shared.waiters.removeValue(forKey: id) else {
                if shared.unanswered.contains(id) { shared.abandoned[id] = error }
                return (nil, nil)
                    as (CheckedContinuation<Result<AMQPConnection, IvyError>, Never>?, Task<Void, Never>?)
            }
            shared.unanswered.remove(id)
            return (waiter, shared.timers.removeValue(forKey: id))
        }
        timer?.cancel()
        waiter?.resume(returning: .failure(error))
    }

    private func carryOut(_ outcome: AMQPLinkState<AMQPConnection>.Outcome) {
        if let lost = outcome.lost { reportLost(generation: lost, error: nil) }
        if let retired = outcome.retired { retire(retired.connection, generation: retired.generation) }
    }

    private func deadlinePassed() -> IvyError {
        let last = shared.withLock { $0.lastFailure }
        return failed(
            "no connection to the broker in time"
                + (last.map { "; the last attempt: \($0.detail ?? "\($0)")" } ?? ""))
    }

    private func failed(_ detail: String) -> IvyError {
        IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: detail)
    }

    // MARK: Opening

    /// The task that opens generation `generation`, once the schedule allows, and answers the
    /// waiters.
    private func opening(generation: UInt64, notBefore: ContinuousClock.Instant?) -> Task<Void, Never> {
        Task { [weak self] in
            if let notBefore, notBefore > .now { try? await Task.sleep(until: notBefore) }
            guard let self else { return }
            let result: Result<AMQPConnection, IvyError>
            if Task.isCancelled {
                result = .failure(IvyError(.closed, endpoint: configuration.endpoint))
            } else {
                shared.withLock { $0.link.attempting(at: .now) }
                do throws(IvyError) { result = .success(try await openAnyNode(generation: generation)) } catch
                {
                    result = .failure(error)
                }
            }
            await finishOpening(result, generation: generation)
        }
    }

    private func finishOpening(_ result: Result<AMQPConnection, IvyError>, generation: UInt64) async {
        let (waiters, timers, kept) = shared.withLock { shared in
            var kept = false
            switch result {
            case .success(let connection):
                kept = shared.link.opened(connection, generation: generation, at: .now)
                shared.lastFailure = nil
            case .failure(let error):
                shared.link.openFailed()
                shared.lastFailure = error
            }
            shared.opening = nil
            let waiters = shared.waiters
            shared.unanswered.subtract(waiters.keys)
            defer {
                shared.waiters = [:]
                shared.timers = [:]
            }
            return (waiters.values, shared.timers.values, kept)
        }
        for timer in timers { timer.cancel() }
        var answer = result
        if case .success(let connection) = result, !kept {
            await connection.close()
            answer = .failure(IvyError(.closed, endpoint: configuration.endpoint))
        } else if case .success = result, generation > 1 {
            logger.info(
                "connected to the broker",
                ["endpoint": configuration.endpoint, "generation": "\(generation)"])
        }
        for waiter in waiters { waiter.resume(returning: answer) }
    }

    /// Connects to the node that answered last, else to the others in turn (a cluster's
    /// `failover` nodes); the last node's error when none answers.
    private func openAnyNode(generation: UInt64) async throws(IvyError) -> AMQPConnection {
        let nodes = configuration.nodes
        let first = shared.withLock { $0.link.preferredNode } % nodes.count
        var failure: IvyError?
        for offset in 0..<nodes.count {
            let index = (first + offset) % nodes.count
            do {
                let connection = try await AMQPConnection.open(
                    nodes.count == 1 ? configuration : configuration.at(nodes[index]),
                    name: "\(name)-\(generation)", generation: generation
                ) { [weak self] error in self?.lost(generation: generation, error: error) }
                shared.withLock { $0.link.preferredNode = index }
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

    // MARK: Losing and retiring

    /// The broker or the network ended connection `generation` (on its thread).
    private func lost(generation: UInt64, error: IvyError) {
        if shared.withLock({ $0.link.lost(generation: generation) }) {
            reportLost(generation: generation, error: error)
        }
    }

    private func reportLost(generation: UInt64, error: IvyError?) {
        logger.warning(
            "lost the connection to the broker; reconnecting",
            [
                "endpoint": configuration.endpoint, "generation": "\(generation)",
                "error": error.map { "\($0)" } ?? "closed",
            ])
        onChange()
    }

    /// Lets a replaced connection settle its deliveries for the retirement period, and after it
    /// while deliveries it made are still held, then closes it.
    private func retire(_ connection: AMQPConnection, generation: UInt64) {
        onChange()
        let period = configuration.retirementPeriod
        let task = Task { [weak self] in
            try? await Task.sleep(for: period)
            while let self, connection.isAlive, !shared.withLock({ $0.link.isClosed }), isInUse(generation) {
                try? await Task.sleep(for: .seconds(1))
            }
            self?.shared.withLock { shared in
                shared.link.closedRetired(generation: generation)
                shared.retirements[generation] = nil
            }
            await connection.close()
        }
        let closed = shared.withLock { shared in
            if !shared.link.isClosed { shared.retirements[generation] = task }
            return shared.link.isClosed
        }
        if closed { task.cancel() }
    }
}
