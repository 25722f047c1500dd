// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

/// Servers that refuse or ignore a client fail it at start-up with a clear error, never a hang.
@Suite("Redis start-up failures")
struct RedisStartupFailureTests {
    private static let password = "x-\(UUID().uuidString.prefix(8))"

    /// Runs `body` with a private server that has a password (the shared one has none).
    private func withServerWithPassword(_ body: (RedisServerProcess) async throws -> Void) async throws {
        try await RedisServerProcess.with(["--requirepass", Self.password], body)
    }

    private func expectAuthenticationRequired(_ error: IvyError?, _ comment: Comment? = nil) {
        #expect(error?.code == .connectionFailed, comment)
        #expect(error?.detail?.contains("NOAUTH") == true, "\(String(describing: error))")
        #expect(error?.detail?.contains("authentication required") == true, "\(String(describing: error))")
        #expect(!"\(String(describing: error))".contains(Self.password))
    }

    @Test func aNotifierURLWithoutThePasswordFailsAtStartUp() async throws {
        try await withServerWithPassword { redis in
            let error = try await withDeadline(.seconds(30), "the notifier to fail") {
                await #expect(throws: IvyError.self) {
                    _ = try await RedisNotifier.connect(url: redis.url(), logger: SilentLogger())
                }
            }
            expectAuthenticationRequired(error)

            // The same with the password works.
            let notifier = try await RedisNotifier.connect(
                url: redis.url(credentials: Self.password), logger: SilentLogger())
            let messages = try await notifier.subscribe(to: "ivy-test-auth")
            try await notifier.publish(Array("ok".utf8), to: "ivy-test-auth")
            #expect(
                try await withDeadline(.seconds(20), "the message") { await messages.first { _ in true } }
                    == Array("ok".utf8))
            await notifier.close()
        }
    }

    /// What `ivy demo` and `ivy worker` do: the queue URL has the password, the notifier's not.
    @Test func aProducerWhoseNotifierLacksThePasswordFailsAtStartUp() async throws {
        try await withServerWithPassword { redis in
            let error = try await withDeadline(.seconds(30), "the producer to fail") {
                await #expect(throws: IvyError.self) {
                    _ = try await IvyClient(
                        registry: TaskRegistry(), queue: .url(redis.url(credentials: Self.password)),
                        notifier: .url(redis.url()),
                        options: ClientOptions(logger: SilentLogger(), encryption: nil))
                }
            }
            expectAuthenticationRequired(error)
        }
    }

    /// The pub/sub connection's own path: a subscriber hears the refusal instead of waiting for ever.
    @Test func aSubscriberWithoutThePasswordFailsInsteadOfWaiting() async throws {
        try await withServerWithPassword { redis in
            let configuration = try RedisConfiguration(url: redis.url())
            let notifier = try RedisNotifier(
                publisher: RedisConnection(configuration: configuration), logger: SilentLogger())
            let error = try await withDeadline(.seconds(30), "the subscription to fail") {
                await #expect(throws: IvyError.self) { _ = try await notifier.subscribe(to: "ivy-test-auth") }
            }
            expectAuthenticationRequired(error)
            await notifier.close()
        }
    }

    /// An ACL user without the channel (NOPERM): that subscription fails, others still work.
    @Test func aSubscriptionTheServerRefusesFailsOnlyItsSubscriber() async throws {
        try await withServerWithPassword { redis in
            let admin = try await RedisConnection.connect(
                try RedisConfiguration(url: redis.url(credentials: Self.password)))
            _ = try await admin.command(
                RedisCommand(
                    "ACL", "SETUSER", "limited", "on", ">limited-pw", "~*", "resetchannels", "&allowed-*",
                    "+@all")
            ).checked(endpoint: admin.endpoint, command: "ACL SETUSER")
            let notifier = try await RedisNotifier.connect(
                url: redis.url(credentials: "limited:limited-pw"), logger: SilentLogger())

            let allowed = try await notifier.subscribe(to: "allowed-1")
            for _ in 0..<2 {
                // Refused again when asked again: a refusal is not remembered as a subscription.
                let error = try await withDeadline(.seconds(30), "the refused subscription to fail") {
                    await #expect(throws: IvyError.self) { _ = try await notifier.subscribe(to: "denied") }
                }
                #expect(error?.code == .commandFailed)
                #expect(error?.detail?.contains("NOPERM") == true, "\(String(describing: error))")
            }
            let later = try await notifier.subscribe(to: "allowed-2")
            _ = try await admin.send([
                RedisCommand("PUBLISH", "allowed-1", "one"), RedisCommand("PUBLISH", "allowed-2", "two"),
            ])
            #expect(
                try await withDeadline(.seconds(20), "allowed-1") { await allowed.first { _ in true } }
                    == Array("one".utf8))
            #expect(
                try await withDeadline(.seconds(20), "allowed-2") { await later.first { _ in true } }
                    == Array("two".utf8))
            await notifier.close()
            await admin.close()
        }
    }

    /// A server that takes the connection and never answers: a timeout naming its limit.
    @Test func aServerThatNeverAnswersTimesOutNamingTheTimeout() async throws {
        let listener = try LoopbackSocket()
        var settings = try RedisConfiguration(url: "redis://127.0.0.1:\(listener.port)")
        settings.connectTimeout = .milliseconds(250)
        settings.commandTimeout = .milliseconds(250)
        let configuration = settings

        let error = try await withDeadline(.seconds(30), "the connection to fail") {
            await #expect(throws: IvyError.self) { _ = try await RedisConnection.connect(configuration) }
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.detail == "timed out after 0.25 s", "\(String(describing: error))")

        // The notifier's pub/sub connection says the same.
        let notifier = try RedisNotifier(
            publisher: RedisConnection(configuration: configuration), logger: SilentLogger())
        let subscribeError = try await withDeadline(.seconds(30), "the subscription to fail") {
            await #expect(throws: IvyError.self) { _ = try await notifier.subscribe(to: "ivy-test-silent") }
        }
        #expect(subscribeError?.code == .connectionFailed)
        #expect(subscribeError?.detail == "timed out after 0.25 s", "\(String(describing: subscribeError))")
        await notifier.close()
        withExtendedLifetime(listener) {}
    }
}
