// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyRedis
import IvyTestSupport
import Testing

@Suite("Redis connection")
struct RedisConnectionTests {
    private func connect(_ url: String = Services.redisURL) async throws -> RedisConnection {
        do { return try await RedisConnection.connect(try RedisConfiguration(url: url)) } catch {
            try Services.unavailable("Redis at \(url)", error)
        }
    }

    @Test func integersEmptyAndNonASCIIArgumentsArriveAsSent() async throws {
        let redis = try await connect()
        let key = "ivy-test:\(UUID().uuidString)"
        let replies = try await redis.send([
            RedisCommand("RPUSH", key, -42, 0, 1_234_567_890_123, "", "héllo ✓", [UInt8]()),
            RedisCommand("LRANGE", key, 0, -1), RedisCommand("DEL", key),
        ])
        #expect(replies[0] == .integer(6))
        #expect(
            replies[1]
                == .array(["-42", "0", "1234567890123", "", "héllo ✓", ""].map { .string(Array($0.utf8)) }))
    }

    @Test func commandsAndPipelinesRoundTripBinaryValues() async throws {
        let redis = try await connect()
        let key = "ivy-test:\(UUID().uuidString)"
        let binary: [UInt8] = [0, 1, 2, 255, 13, 10, 0]
        let replies = try await redis.send([
            RedisCommand("SET", key, binary), RedisCommand("GET", key), RedisCommand("DEL", key),
            RedisCommand("GET", key),
        ])
        #expect(replies[0] == .status("OK"))
        #expect(replies[1] == .string(binary))
        #expect(replies[2] == .integer(1))
        #expect(replies[3] == .null)
        let error = try await redis.command(RedisCommand("NOSUCHCOMMAND"))
        guard case .error(let message) = error else {
            Issue.record("expected an error reply")
            return
        }
        #expect(message.contains("unknown command"))
        await redis.close()
    }

    @Test func manyConcurrentCommandsShareOnePipelineAndEachGetsItsReply() async throws {
        let redis = try await connect()
        let replies = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for index in 0..<500 {
                group.addTask {
                    (index, try await redis.command(RedisCommand("ECHO", "value-\(index)")).text)
                }
            }
            var replies: [Int: String?] = [:]
            for try await (index, text) in group { replies[index] = text }
            return replies
        }
        #expect(replies.count == 500)
        #expect(replies.allSatisfy { $0.value == "value-\($0.key)" })
        await redis.close()
    }

    @Test func aWrongPasswordIsAClearErrorThatDoesNotShowThePassword() async throws {
        let admin = try await connect()
        let user = "ivy-test-\(UUID().uuidString.prefix(8))"
        _ = try await admin.command(
            RedisCommand("ACL", "SETUSER", user, "on", ">right-password", "~*", "+@all")
        )
        .checked(endpoint: admin.endpoint, command: "ACL SETUSER")
        defer {
            Task {
                _ = try? await admin.command(RedisCommand("ACL", "DELUSER", user))
                await admin.close()
            }
        }
        let base = try RedisConfiguration(url: Services.redisURL)
        guard case .tcp(let host, let port) = base.address else { return }

        let wrong = "redis://\(user):wrong-password@\(host):\(port)"
        let error = await #expect(throws: IvyError.self) {
            _ = try await RedisConnection.connect(try RedisConfiguration(url: wrong))
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.detail?.contains("authentication failed") == true)
        #expect(error?.detail?.contains("WRONGPASS") == true)
        #expect(!"\(String(describing: error))".contains("wrong-password"))

        let right = try await RedisConnection.connect(
            try RedisConfiguration(url: "redis://\(user):right-password@\(host):\(port)"))
        #expect(try await right.command(RedisCommand("PING")) == .status("PONG"))
        await right.close()
    }

    @Test func anUnreachableServerIsAClearError() async throws {
        let error = await #expect(throws: IvyError.self) {
            _ = try await RedisConnection.connect(try RedisConfiguration(url: "redis://127.0.0.1:1"))
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.endpoint == "redis://127.0.0.1:1/0")
    }

    @Test func aBlockingCommandEndsAtOnceWhenItsTaskIsCancelled() async throws {
        let redis = try await connect()
        let waiting = Task {
            try await redis.blockingCommand(
                RedisCommand("BLPOP", "ivy-test:never:\(UUID())", "30"), wait: .seconds(30))
        }
        // Cancel once the BLPOP is on the wire: the server lists the client as blocked.
        let admin = try await connect()
        try await withDeadline(.seconds(20), "the BLPOP to block") {
            while true {
                let clients = try await admin.command(RedisCommand("CLIENT", "LIST")).text ?? ""
                if clients.contains("cmd=blpop") { return }
                await Task.yield()
            }
        }
        waiting.cancel()
        let result = try await withDeadline(.seconds(10), "the cancelled BLPOP") { await waiting.result }
        #expect(throws: CancellationError.self) { try result.get() }
        // The connection recovers for the next command.
        #expect(try await redis.command(RedisCommand("PING")) == .status("PONG"))
        await redis.close()
        await admin.close()
    }
}
