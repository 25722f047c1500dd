// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

/// Sends commands to the masters of a Redis Cluster, each to the node that owns its key's slot.
///
/// It keeps the cluster's slot map (from `CLUSTER SLOTS`, asked of any node it knows) and one
/// ``RedisConnection`` per master, each with its own thread and pipeline as for one server. A
/// request is cut into runs of commands for the same slot, and every run goes out at once to its
/// node's pipeline: commands on one key keep the order they were sent in, across requests as on
/// one server, except that a run redirected or sent again (a reshard, a failover) goes after
/// what was sent meanwhile; runs for different nodes may run in any order (a caller that needs
/// an order across slots sends in steps). A transaction (`MULTI` … `EXEC`) and a script with the
/// `SCRIPT LOAD` before it stay whole. Replies come back in the request's order.
///
/// Redirections are followed: `MOVED` (the slot has a new owner: the map is updated and asked
/// for again; the run goes straight to the new owner), `ASK` (a slot being migrated: a lone
/// command, or a script after its `SCRIPT LOAD`, once more to the node importing it, with
/// `ASKING` just before it; a transaction waits for the migration's end, when it gets `MOVED`),
/// and the states a cluster passes through while it migrates a slot or promotes
/// a replica (`TRYAGAIN`, `CLUSTERDOWN`, a master that went away) are waited out, with backoff,
/// until the command timeout has passed.
final class RedisClusterRouter: Sendable {
    private struct State {
        /// For each slot, its master's index in `masters`; -1: unknown.
        var slots = [Int32](repeating: -1, count: RedisClusterSlot.count)
        var masters: [RedisConfiguration.Address] = []
        /// Masters and replicas, as the last map named them.
        var nodes: [RedisConfiguration.Address] = []
        /// Whether each master had a replica in the last map.
        var hasReplica: [Bool] = []
        var connections: [RedisConfiguration.Address: RedisConnection] = [:]
        /// The map is asked for by one task at a time; the others await it.
        var refresh: Task<Void, any Error>?
        var lastRefresh: ContinuousClock.Instant?
        var isClosed = false
    }

    let configuration: RedisConfiguration
    private let name: String
    private let state = Mutex(State())

    /// Redirections one run of commands may follow before it fails.
    private static let redirectionLimit = 16

    init(configuration: RedisConfiguration, name: String) {
        precondition(configuration.isCluster, "a router is for a cluster's configuration")
        self.configuration = configuration
        self.name = name
    }

    /// Learns the slot map, so that a wrong address, wrong credentials or a server that is no
    /// cluster fail here with a clear error.
    func start() async throws {
        try await refreshMap(force: true)
    }

    func close() async {
        let connections = state.withLock { state in
            state.isClosed = true
            state.refresh?.cancel()
            return Array(state.connections.values)
        }
        for connection in connections { await connection.close() }
    }

    // MARK: Sending

    /// Sends `commands`, each run of them to its node, and returns their replies in order.
    ///
    /// A request of one run (a blocking command and the script behind it, say) is sent with
    /// `wait` and `onCancel` as on one server; a longer one as ``send(_:completion:)`` does.
    func send(_ commands: [RedisCommand], wait: Duration, onCancel: RedisConnection.CancellationAction)
        async throws -> [RedisReply]
    {
        let runs = Self.runs(of: commands)
        if runs.count == 1 {
            return try await sendRun(commands, slot: runs[0].slot, wait: wait, onCancel: onCancel)
        }
        return try await awaiting { send(commands, completion: $0) }
    }

    /// Sends `commands` without suspending: every run goes to its node's pipeline now, in
    /// order, and `completion` gets the replies (on a connection's thread, or a task's when a run
    /// had to be sent again).
    func send(
        _ commands: [RedisCommand], completion: @escaping @Sendable (Result<[RedisReply], any Error>) -> Void
    ) {
        // Closed, it makes no new connections: a node not yet used would otherwise be reached.
        if isClosed { return completion(.failure(IvyError(.closed, endpoint: configuration.endpoint))) }
        let runs = Self.runs(of: commands)
        let owners = runs.map { lookUp($0.slot) }
        guard owners.allSatisfy({ $0 != nil }) else {
            // The map does not know yet: the slow way, which learns it.
            Task {
                do { completion(.success(try await self.resend(commands, runs, replies: []))) } catch {
                    completion(.failure(error))
                }
            }
            return
        }
        let gathered = RunReplies(count: runs.count) { results in
            // Runs that were redirected or lost their node are sent again, the slow way.
            guard results.contains(where: { $0 == nil }) else {
                return completion(.success(results.flatMap { $0! }))
            }
            Task {
                do { completion(.success(try await self.resend(commands, runs, replies: results))) } catch {
                    completion(.failure(error))
                }
            }
        }
        for (index, run) in runs.enumerated() {
            connection(to: owners[index]!).send(Array(commands[run.range])) { result in
                switch result {
                case .success(let replies) where Self.redirection(in: replies, from: owners[index]!) == nil:
                    gathered.finish(index, with: replies)
                default:
                    gathered.finish(index, with: nil)
                }
            }
        }
    }

    /// The runs' replies: those in `replies`, and the others sent again.
    private func resend(_ commands: [RedisCommand], _ runs: [Run], replies: [[RedisReply]?]) async throws
        -> [RedisReply]
    {
        var all: [RedisReply] = []
        all.reserveCapacity(commands.count)
        for (index, run) in runs.enumerated() {
            if index < replies.count, let done = replies[index] {
                all += done
            } else {
                all += try await sendRun(
                    Array(commands[run.range]), slot: run.slot, wait: .zero, onCancel: .awaitReply)
            }
        }
        return all
    }

    /// Commands in a row for one slot (or none).
    struct Run {
        let slot: Int?
        let range: Range<Int>
    }

    static func runs(of commands: [RedisCommand]) -> [Run] {
        let slots = slots(of: commands)
        var runs: [Run] = []
        var start = 0
        while start < commands.count {
            var end = start + 1
            while end < commands.count && slots[end] == slots[start] { end += 1 }
            runs.append(Run(slot: slots[start], range: start..<end))
            start = end
        }
        return runs
    }

    /// Sends commands of one slot (or none), following redirections.
    private func sendRun(
        _ commands: [RedisCommand], slot: Int?, wait: Duration, onCancel: RedisConnection.CancellationAction
    ) async throws -> [RedisReply] {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.commandTimeout + wait
        /// Where the next try goes instead of the map's owner: a `MOVED` or `ASK` target.
        var redirectedTo: RedisConfiguration.Address?
        var asking = false
        /// Tries that waited (their number sets the backoff; the deadline bounds them), and
        /// redirections followed at once (bounded by their count).
        var failures = 0
        var redirections = 0
        var lastProblem = ""
        while true {
            if isClosed { throw IvyError(.closed, endpoint: configuration.endpoint) }
            let address: RedisConfiguration.Address
            if let redirectedTo { address = redirectedTo } else { address = try await owner(of: slot) }
            let connection = self.connection(to: address)
            let sent = asking ? Self.asking(commands) : commands
            do {
                var replies = try await connection.send(
                    sent, wait: wait, onCancel: onCancel.routed(to: address))
                if asking { replies.remove(at: commands.count - 1) }
                redirectedTo = nil
                asking = false
                guard let redirection = Self.redirection(in: replies, from: address) else { return replies }
                lastProblem = redirection.text
                if case .moved(let slot, let target) = redirection {
                    learn(slot: slot, owner: target)
                    // The whole map may have changed (a failover, a reshard): asked for again.
                    Task { try? await self.refreshMap(force: false) }
                }
                switch Self.next(after: redirection, of: commands) {
                case .resend(let target, let isAsking):
                    redirectedTo = target
                    asking = isAsking
                    redirections += 1
                case .wait(let refreshing):
                    try await pause(after: failures, until: deadline, onCancel, lastProblem)
                    failures += 1
                    if refreshing { try? await refreshMap(force: false) }
                }
            } catch let error as IvyError where error.code == .connectionFailed || error.code == .closed {
                if RedisContext.isAuthenticationFailure(error) || isClosed { throw error }
                // The node went away: a failover may be under way. Its replica takes over once
                // the cluster agrees that it failed; until then the map still names it.
                lastProblem = error.detail ?? "\(error)"
                if clock.now >= deadline { throw error }
                try await pause(after: failures, until: deadline, onCancel, lastProblem)
                failures += 1
                try? await refreshMap(force: true)
                redirectedTo = nil
                asking = false
            }
            if redirections > Self.redirectionLimit {
                throw IvyError(
                    .commandFailed, endpoint: configuration.endpoint,
                    detail:
                        "\(commands.first?.name ?? "command"): still redirected after \(redirections) redirections (\(lastProblem))"
                )
            }
        }
    }

    /// Waits before another try: 10 ms, doubling to 500 ms, with jitter; fails at `deadline`.
    ///
    /// Cancelling the calling task does not cut the wait short, as it does not cut a command's
    /// reply short on one server, except for commands sent to be interrupted.
    private func pause(
        after failures: Int, until deadline: ContinuousClock.Instant,
        _ onCancel: RedisConnection.CancellationAction,
        _ problem: String
    ) async throws {
        if case .interrupt = onCancel { try Task.checkCancellation() }
        let clock = ContinuousClock()
        let delay = Duration.milliseconds(min(500, 10 << min(failures, 6))) * Double.random(in: 0.5...1)
        guard clock.now + delay < deadline else {
            throw IvyError(
                .connectionFailed, endpoint: configuration.endpoint,
                detail:
                    "the cluster did not settle within \(RedisContext.seconds(configuration.commandTimeout)) s: \(problem)"
            )
        }
        // A task of its own, which the caller's cancellation does not reach.
        await Task.detached { try? await Task.sleep(for: delay) }.value
    }

    /// What `sendRun` does after a redirection.
    enum Next: Equatable {
        /// Send the run again at once to `to`, after `ASKING` if `asking`.
        case resend(to: RedisConfiguration.Address, asking: Bool)
        /// Wait (with backoff, until the deadline), then try the slot's master again, asking for
        /// the map first if `refreshing`.
        case wait(refreshing: Bool)
    }

    /// The step after `redirection` of a run of `commands`.
    static func next(after redirection: Redirection, of commands: [RedisCommand]) -> Next {
        switch redirection {
        case .moved(_, let target):
            return .resend(to: target, asking: false)
        case .ask(let target):
            // Only a lone command (or a script and its load) can be asked again: in a
            // transaction, every command would need ASKING. Those wait for the end of the
            // migration, when the slot's keys answer MOVED.
            let askable = commands.count == 1 || (commands.count == 2 && commands[0].name == "SCRIPT")
            return askable ? .resend(to: target, asking: true) : .wait(refreshing: false)
        case .retry:
            return .wait(refreshing: true)
        }
    }

    /// `commands` for a node importing their slot: `ASKING` holds for the next command only, so
    /// it goes right before the keyed one, the last of the run (a script after its load).
    static func asking(_ commands: [RedisCommand]) -> [RedisCommand] {
        var sent = commands
        sent.insert(RedisCommand("ASKING"), at: commands.count - 1)
        return sent
    }

    /// What a reply asks of the router.
    enum Redirection: Equatable {
        case moved(slot: Int, to: RedisConfiguration.Address)
        case ask(to: RedisConfiguration.Address)
        /// Try again in a moment: a migration or a failover is under way.
        case retry(String)

        var text: String {
            switch self {
            case .moved(let slot, let address): "MOVED \(slot) \(RedisConfiguration.shown(address))"
            case .ask(let address): "ASK \(RedisConfiguration.shown(address))"
            case .retry(let message): message
            }
        }
    }

    /// The first reply that redirects, if any, of replies from the node at `node`.
    static func redirection(in replies: [RedisReply], from node: RedisConfiguration.Address) -> Redirection? {
        for reply in replies {
            guard let message = reply.errorMessage else {
                // A transaction's EXEC reply holds its commands' errors.
                if let elements = reply.array, let inner = redirection(in: elements, from: node) {
                    return inner
                }
                continue
            }
            let words = message.split(separator: " ")
            switch words.first {
            case "MOVED":
                if words.count == 3, let slot = Int(words[1]),
                    let address = address(words[2], repliedFrom: node)
                {
                    return .moved(slot: slot, to: address)
                }
            case "ASK":
                if words.count == 3, let address = address(words[2], repliedFrom: node) {
                    return .ask(to: address)
                }
            case "TRYAGAIN", "CLUSTERDOWN", "UNBLOCKED", "MASTERDOWN", "LOADING", "READONLY":
                return .retry(message)
            case "EXECABORT":
                // The commands' own errors (MOVED, ASK) came before it.
                continue
            default:
                continue
            }
        }
        return nil
    }

    /// `host:port` of a redirection; IPv6 addresses come without brackets, the port after the
    /// last ":". Without a host (`:port`, a node that does not know its own), the address that
    /// answered, `repliedFrom`. nil for a port out of range.
    static func address(_ text: Substring, repliedFrom: RedisConfiguration.Address) -> RedisConfiguration
        .Address?
    {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65_535).contains(port)
        else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty || host == "?", case .tcp(let replied, _) = repliedFrom { host = replied }
        return .tcp(host: host, port: port)
    }

    /// Each command's slot: its key's, or for a command without a key the slot of the command
    /// it belongs with (a transaction's, or the script after `SCRIPT LOAD`), else the one before.
    static func slots(of commands: [RedisCommand]) -> [Int?] {
        var slots = commands.map { RedisClusterSlot.of($0) }
        // A transaction takes the slot of its first command with a key, MULTI and EXEC included.
        var index = 0
        while index < commands.count {
            if commands[index].name.uppercased() == "MULTI" {
                var end = index + 1
                while end < commands.count && commands[end].name.uppercased() != "EXEC" { end += 1 }
                let slot = slots[index..<min(end + 1, commands.count)].lazy.compactMap { $0 }.first
                for position in index..<min(end + 1, commands.count) { slots[position] = slot }
                index = end + 1
            } else {
                index += 1
            }
        }
        // Others without a key go with the command after them (SCRIPT LOAD before EVALSHA) when
        // they come first, else with the one before.
        for position in slots.indices.reversed() where slots[position] == nil && position + 1 < slots.count {
            if commands[position].name.uppercased() == "SCRIPT" { slots[position] = slots[position + 1] }
        }
        for position in slots.indices where slots[position] == nil && position > 0 {
            slots[position] = slots[position - 1]
        }
        if let first = slots.firstIndex(where: { $0 != nil }) {
            for position in 0..<first { slots[position] = slots[first] }
        }
        return slots
    }

    // MARK: The map

    private var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Every node the last map named, masters first, then the seeds not among them.
    var knownNodes: [RedisConfiguration.Address] {
        let nodes = state.withLock { $0.nodes }
        return nodes + (configuration.clusterSeeds ?? []).filter { !nodes.contains($0) }
    }

    /// The master that owns `slot`; for no slot, any master.
    private func owner(of slot: Int?) async throws -> RedisConfiguration.Address {
        if let address = lookUp(slot) { return address }
        try await refreshMap(force: true)
        if let address = lookUp(slot) { return address }
        // Nobody covers the slot: any node will say who does, or that the cluster is down.
        return state.withLock { $0.masters.first } ?? configuration.address
    }

    /// Whether the master of `slot` had a replica when the map was last asked for.
    func hasReplica(slot: Int) -> Bool {
        state.withLock { state in
            let index = Int(state.slots[slot])
            return index >= 0 && index < state.hasReplica.count && state.hasReplica[index]
        }
    }

    /// The master of `slot` as the map last said; nil when none is known.
    func master(ofSlot slot: Int) -> RedisConfiguration.Address? { lookUp(slot) }

    /// Asks for the map again in the background, unless it was asked for in the last 100 ms.
    func refreshSoon() {
        Task { try? await refreshMap(force: false) }
    }

    private func lookUp(_ slot: Int?) -> RedisConfiguration.Address? {
        state.withLock { state in
            guard let slot else { return state.masters.first }
            let index = Int(state.slots[slot])
            return index >= 0 ? state.masters[index] : nil
        }
    }

    /// Takes what a `MOVED` said, until the next full map.
    private func learn(slot: Int, owner: RedisConfiguration.Address) {
        guard (0..<RedisClusterSlot.count).contains(slot) else { return }
        state.withLock { state in
            if let index = state.masters.firstIndex(of: owner) {
                state.slots[slot] = Int32(index)
            } else {
                state.masters.append(owner)
                state.slots[slot] = Int32(state.masters.count - 1)
            }
        }
    }

    /// The connection to the node at `address`, made on first use and kept.
    func connection(to address: RedisConfiguration.Address) -> RedisConnection {
        let (connection, isClosed) = state.withLock { state in
            if let connection = state.connections[address] { return (connection, state.isClosed) }
            let connection = RedisConnection(configuration: configuration.node(address), name: name)
            // Once closed, the router keeps none: close() has taken those it had.
            if !state.isClosed { state.connections[address] = connection }
            return (connection, state.isClosed)
        }
        // Made after close() (by a refresh or a send racing it): closed at once, so its
        // commands fail with `closed` and its thread ends.
        if isClosed { Task { await connection.close() } }
        return connection
    }

    /// Asks a node for the slot map: the masters first, then the seeds. Without `force`, not
    /// more than every 100 ms. Concurrent callers share one request.
    func refreshMap(force: Bool) async throws {
        let task = state.withLock { state -> Task<Void, any Error>? in
            if let running = state.refresh { return running }
            if !force, let last = state.lastRefresh, ContinuousClock.now - last < .milliseconds(100) {
                return nil
            }
            let task = Task {
                defer {
                    self.state.withLock { state in
                        state.refresh = nil
                        state.lastRefresh = ContinuousClock.now
                    }
                }
                try await self.fetchMap()
            }
            state.refresh = task
            return task
        }
        try await task?.value
    }

    private func fetchMap() async throws {
        // Masters first, then their replicas (a failover's new masters), then the seeds.
        let candidates = state.withLock { $0.masters + $0.nodes } + (configuration.clusterSeeds ?? [])
        var tried: Set<RedisConfiguration.Address> = []
        var lastError: (any Error)?
        for address in candidates where tried.insert(address).inserted {
            do {
                let reply = try await connection(to: address).command(RedisCommand("CLUSTER", "SLOTS"))
                if let message = reply.errorMessage {
                    if let error = RedisContext.authenticationError(message, endpoint: configuration.endpoint)
                    {
                        throw error
                    }
                    throw IvyError(
                        .connectionFailed, endpoint: configuration.endpoint,
                        detail: message.contains("cluster support disabled")
                            ? "\(RedisConfiguration.shown(address)) is not in a cluster (use redis:// for one server)"
                            : "CLUSTER SLOTS at \(RedisConfiguration.shown(address)): \(message)")
                }
                try install(reply, askedOf: address)
                return
            } catch let error as IvyError {
                if RedisContext.isAuthenticationFailure(error) { throw error }
                lastError = error
            }
        }
        throw lastError
            ?? IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: "no seed node")
    }

    /// Installs a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …], replicas…], …]`.
    private func install(_ reply: RedisReply, askedOf asked: RedisConfiguration.Address) throws {
        guard let ranges = reply.array else {
            throw IvyError(
                .commandFailed, endpoint: configuration.endpoint, detail: "CLUSTER SLOTS: not an array")
        }
        var slots = [Int32](repeating: -1, count: RedisClusterSlot.count)
        var masters: [RedisConfiguration.Address] = []
        var replicas: [RedisConfiguration.Address] = []
        var hasReplica: [Bool] = []
        /// `[host, port, …]`; an empty host, or "?", means the address the question went to.
        func nodeAddress(_ node: [RedisReply]) -> RedisConfiguration.Address? {
            guard node.count >= 2, let port = node[1].integer, (1...65_535).contains(port) else { return nil }
            var host = node[0].text ?? ""
            if host.isEmpty || host == "?", case .tcp(let askedHost, _) = asked { host = askedHost }
            return .tcp(host: host, port: port)
        }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].integer,
                let end = parts[1].integer,
                0 <= start, start <= end, end < RedisClusterSlot.count,
                let address = parts[2].array.flatMap(nodeAddress)
            else { continue }
            let ownReplicas = parts.dropFirst(3).compactMap { $0.array.flatMap(nodeAddress) }
            replicas += ownReplicas
            let index: Int
            if let known = masters.firstIndex(of: address) {
                index = known
            } else {
                masters.append(address)
                hasReplica.append(false)
                index = masters.count - 1
            }
            if !ownReplicas.isEmpty { hasReplica[index] = true }
            for slot in start...end { slots[slot] = Int32(index) }
        }
        guard !masters.isEmpty else {
            throw IvyError(
                .connectionFailed, endpoint: configuration.endpoint,
                detail: "the cluster has no slots assigned yet")
        }
        let nodes = masters + replicas.filter { !masters.contains($0) }
        let kept = Set(nodes + (configuration.clusterSeeds ?? []))
        let gone = state.withLock { state -> [RedisConnection] in
            state.slots = slots
            state.masters = masters
            state.hasReplica = hasReplica
            state.nodes = nodes
            // Nodes that left the map (a failed master, say) keep no connection and thread:
            // commands still on one fail and are sent again to their slot's master.
            let gone = state.connections.filter { !kept.contains($0.key) }
            for address in gone.keys { state.connections[address] = nil }
            return Array(gone.values)
        }
        if !gone.isEmpty { Task { for connection in gone { await connection.close() } } }
    }
}
