// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyTestSupport
import Testing

@testable import IvyRedis

/// The cluster-aware connection against the Redis Cluster `scripts/services.sh up` starts (three
/// masters, a replica each), and the slot arithmetic it rests on.
@Suite("Redis Cluster")
struct RedisClusterTests {
    private func connect(_ url: String = Services.redisClusterURL) async throws -> RedisConnection {
        do { return try await RedisConnection.connect(try RedisConfiguration(url: url)) } catch {
            try Services.unavailable("Redis Cluster at \(url)", error)
        }
    }

    @Test func slotsAreRedisOwn() {
        // Values from Redis' CLUSTER KEYSLOT.
        #expect(RedisClusterSlot.of(key: "123456789") == 0x31C3 % 16_384)
        #expect(RedisClusterSlot.of(key: "ivy:{testpackage}:stream") == 14_003)
        #expect(
            RedisClusterSlot.of(key: "ivy:{testpackage}:signal") == RedisClusterSlot.of(key: "testpackage"))
        // An empty tag does not count: the whole key is hashed.
        #expect(RedisClusterSlot.of(key: "a{}b") != RedisClusterSlot.of(key: ""))
        #expect(
            RedisClusterSlot.of(key: "{user1000}.following")
                == RedisClusterSlot.of(key: "{user1000}.followers"))
    }

    @Test func theServerAgreesOnEverySlotWeCompute() async throws {
        let redis = try await connect()
        for key in [
            "ivy:{testpackage}:stream", "ivy:status:{6f9c2a1e}", "{}", "a{b}c{d}", "héllo", "ivy:{workers}",
        ] {
            let reply = try await redis.command(RedisCommand("CLUSTER", "KEYSLOT", key))
            #expect(reply.integer == RedisClusterSlot.of(key: key), "\(key)")
        }
        await redis.close()
    }

    @Test func commandsFromAnySeedReachTheOwnerOfTheirKeys() async throws {
        // One seed, the node that owns none of these keys' slots at first.
        for seed in [6401, 6402, 6403] {
            let url = "redis+cluster://127.0.0.1:\(try seedPort(seed))/"
            let redis = try await connect(url)
            var keys: [String] = []
            for index in 0..<60 { keys.append("ivy-test:{\(UUID().uuidString)}:\(index)") }
            // One request over many slots: every run to its node, the replies in order.
            var commands: [RedisCommand] = []
            for key in keys { commands += [RedisCommand("SET", key, key), RedisCommand("GET", key)] }
            let replies = try await redis.send(commands)
            #expect(replies.count == commands.count)
            for (index, key) in keys.enumerated() {
                #expect(replies[2 * index] == .status("OK"))
                #expect(replies[2 * index + 1] == .string(Array(key.utf8)))
            }
            _ = try await redis.send(keys.map { RedisCommand("DEL", $0) })
            await redis.close()
        }
    }

    @Test func aTransactionAndAScriptStayOnTheirKeysNode() async throws {
        let redis = try await connect()
        let queue = "ivy-test-\(UUID().uuidString.prefix(8))"
        let stream = "ivy:{\(queue)}:stream"
        let signal = "ivy:{\(queue)}:signal"
        let replies = try await redis.send([
            RedisCommand("MULTI"), RedisCommand("XADD", stream, "*", "b", "x"),
            RedisCommand("LPUSH", signal, "1"),
            RedisCommand("EXEC"),
        ])
        #expect(replies[3].array?.count == 2)
        let script = RedisScript(
            name: "test", source: "return redis.call('LLEN', KEYS[1]) + redis.call('XLEN', KEYS[2])")
        #expect(try await redis.evaluate(script, keys: [signal, stream], arguments: []) == .integer(2))
        _ = try await redis.command(RedisCommand("DEL", stream, signal))
        await redis.close()
    }

    @Test func aClosedClusterConnectionFailsCommandsAtOnce() async throws {
        let redis = try await connect()
        _ = try await redis.command(RedisCommand("GET", "ivy-test:x"))
        await redis.close()
        let outcome = try await awaiting { completion in
            redis.send([RedisCommand("GET", "ivy-test:x")]) { completion(.success($0)) }
        }
        guard case .failure(let error) = outcome, let error = error as? IvyError else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(error.code == .closed)
    }

    @Test func urlsAreChecked() throws {
        let cluster = try RedisConfiguration(
            url: "rediss+cluster://u:secret@10.0.0.1:7000,[::1]:7001,node3/?ca=/ca.pem")
        #expect(
            cluster.clusterSeeds == [
                .tcp(host: "10.0.0.1", port: 7000), .tcp(host: "::1", port: 7001),
                .tcp(host: "node3", port: 6379),
            ])
        #expect(cluster.endpoint == "rediss+cluster://***@10.0.0.1:7000,[::1]:7001,node3:6379/")
        #expect(cluster.tls?.caFile == "/ca.pem")
        #expect(cluster.password?.exposedValue == "secret")
        let single = try RedisConfiguration(url: "redis://127.0.0.1:7000?cluster=1")
        #expect(single.clusterSeeds == [.tcp(host: "127.0.0.1", port: 7000)])
        #expect(try RedisConfiguration(url: "redis://127.0.0.1:7000?cluster=0").isCluster == false)
        for (url, detail) in [
            ("redis+cluster://a:1,,b:2/", "a cluster's URL names HOST:PORT nodes separated by commas"),
            ("redis+cluster://a:1,b:99999/", "bad port"),
            ("redis+cluster://a:1/3", "a Redis Cluster has database 0 only"),
            ("redis://a?cluster=yes", "cluster must be 1 or 0"),
            ("unix:///tmp/r.sock?cluster=1", "a cluster is reached over TCP, not a unix socket"),
        ] {
            #expect(throws: IvyError(.invalidURL, endpoint: Redaction.redact(url: url), detail: detail)) {
                try RedisConfiguration(url: url)
            }
        }
    }

    @Test func redirectionsAreReadWithoutTrustingThem() {
        let node = RedisConfiguration.Address.tcp(host: "10.0.0.5", port: 7000)
        func read(_ replies: [RedisReply]) -> RedisClusterRouter.Redirection? {
            RedisClusterRouter.redirection(in: replies, from: node)
        }
        #expect(
            read([.error("MOVED 3999 127.0.0.1:6381")])
                == .moved(slot: 3999, to: .tcp(host: "127.0.0.1", port: 6381)))
        // A node that does not know its own address leaves the host out: the one that answered.
        #expect(read([.error("MOVED 1 :7002")]) == .moved(slot: 1, to: .tcp(host: "10.0.0.5", port: 7002)))
        #expect(read([.error("ASK 5 [::1]:7001")]) == .ask(to: .tcp(host: "::1", port: 7001)))
        // Inside a transaction's EXEC reply, after the EXECABORT of the queued commands.
        #expect(
            read([.status("OK"), .error("EXECABORT x"), .array([.error("MOVED 2 a:1")])])
                == .moved(slot: 2, to: .tcp(host: "a", port: 1)))
        #expect(read([.error("TRYAGAIN Multiple keys request during rehashing of slot")]) != nil)
        // Out of range, or no number: not followed (the error reaches the caller).
        for hostile in [
            "MOVED 1 h:99999999999", "MOVED 1 h:0", "MOVED 1 h:-3", "MOVED x h:1", "ASK 1 h", "MOVED 1",
        ] {
            #expect(read([.error(hostile)]) == nil, "\(hostile)")
        }
    }

    @Test func eachRedirectionLeadsToItsNextStep() {
        let target = RedisConfiguration.Address.tcp(host: "127.0.0.1", port: 6402)
        let get = [RedisCommand("GET", "k")]
        let script = [RedisCommand("SCRIPT", "LOAD", "return 1"), RedisCommand("EVALSHA", "abc", 1, "k")]
        let transaction = [
            RedisCommand("MULTI"), RedisCommand("XADD", "k", "*", "b", "x"), RedisCommand("EXEC"),
        ]
        typealias Router = RedisClusterRouter
        #expect(
            Router.next(after: .moved(slot: 1, to: target), of: transaction)
                == .resend(to: target, asking: false))
        #expect(Router.next(after: .ask(to: target), of: get) == .resend(to: target, asking: true))
        #expect(Router.next(after: .ask(to: target), of: script) == .resend(to: target, asking: true))
        // A transaction cannot be asked: every command would need ASKING. It waits for MOVED.
        #expect(Router.next(after: .ask(to: target), of: transaction) == .wait(refreshing: false))
        #expect(Router.next(after: .retry("TRYAGAIN"), of: get) == .wait(refreshing: true))
        // ASKING holds for one command: the script's, not its load's.
        #expect(Router.asking(script).map(\.name) == ["SCRIPT", "ASKING", "EVALSHA"])
        #expect(Router.asking(get).map(\.name) == ["ASKING", "GET"])
    }

    @Test func replicasConfirmWritesOnAClusterByDefault() async throws {
        // A long timeout, which a WAIT does not use up once a replica has the write.
        let redis = try await connect(Services.redisClusterURL + "?wait_timeout=5")
        let key = "ivy:{ivy-test-\(UUID().uuidString.prefix(8))}:stream"
        // Every master of the test cluster has a replica: one must have the write.
        let wait = try #require(redis.replicaWait(afterWritingTo: key))
        #expect(wait.replicas == 1)
        let replies = try await redis.send([
            RedisCommand("SET", key, "x"), wait.command, RedisCommand("DEL", key),
        ])
        #expect(replies[1] == .integer(1))
        await redis.close()

        let unconfirmed = try await connect(Services.redisClusterURL + "?wait_replicas=0")
        #expect(unconfirmed.replicaWait(afterWritingTo: key) == nil)
        await unconfirmed.close()
        let single = try RedisConfiguration(url: "redis://127.0.0.1:6390/?wait_replicas=2&wait_timeout=0.25")
        #expect(single.replicasToConfirm == 2)
        #expect(single.replicaTimeout == .milliseconds(250))
        #expect(
            try RedisConfiguration(url: "redis+cluster://a:1/?command_timeout=30").commandTimeout
                == .seconds(30))
        #expect(try RedisConfiguration(url: "redis://127.0.0.1:6390/").replicasToConfirm == nil)
        for (url, detail) in [
            ("redis://a/?wait_replicas=-1", "wait_replicas must be 0 to 16"),
            ("redis://a/?wait_replicas=many", "wait_replicas must be 0 to 16"),
            ("redis://a/?wait_timeout=nan", "wait_timeout must be 0.001 to 5 seconds"),
            ("redis://a/?wait_timeout=600", "wait_timeout must be 0.001 to 5 seconds"),
            ("redis://a/?command_timeout=0", "command_timeout must be 0.1 to 3600 seconds"),
        ] {
            #expect(throws: IvyError(.invalidURL, endpoint: Redaction.redact(url: url), detail: detail)) {
                try RedisConfiguration(url: url)
            }
        }
    }

    @Test func aServerThatIsNoClusterIsToldApart() async throws {
        guard case .tcp(let host, let port) = try RedisConfiguration(url: Services.redisURL).address else {
            return
        }
        do {
            _ = try await RedisConnection.connect(
                try RedisConfiguration(url: "redis+cluster://\(host):\(port)/"))
            Issue.record("connected to a server that is no cluster")
        } catch let error as IvyError {
            #expect(error.detail?.contains("is not in a cluster (use redis:// for one server)") == true)
        }
    }

    /// The port of the `index`-th node (6401…) under `IVY_REDIS_CLUSTER_PORTS`.
    private func seedPort(_ defaultPort: Int) throws -> Int {
        guard let range = ProcessInfo.processInfo.environment["IVY_REDIS_CLUSTER_PORTS"],
            let first = Int(range.split(separator: "-")[0])
        else { return defaultPort }
        return first + defaultPort - 6401
    }
}
