// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyCore
import IvyRedis
import Testing

@Suite("Redis URLs")
struct RedisConfigurationTests {
    @Test func aFullURL() throws {
        let configuration = try RedisConfiguration(url: "redis://app:s%40cret@127.0.0.1:6390/3")
        #expect(configuration.address == .tcp(host: "127.0.0.1", port: 6390))
        #expect(configuration.username == "app")
        #expect(configuration.password?.exposedValue == "s@cret")
        #expect(configuration.database == 3)
        #expect(configuration.endpoint == "redis://***@127.0.0.1:6390/3")
    }

    @Test func defaultsAndALonePassword() throws {
        let plain = try RedisConfiguration(url: "redis://localhost")
        #expect(plain.address == .tcp(host: "localhost", port: 6379))
        #expect(plain.password == nil)
        #expect(plain.database == 0)
        let password = try RedisConfiguration(url: "redis://hunter2@localhost:7000")
        #expect(password.username == nil)
        #expect(password.password?.exposedValue == "hunter2")
        #expect(!password.endpoint.contains("hunter2"))
    }

    @Test func aUnixSocket() throws {
        let configuration = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=2")
        #expect(configuration.address == .unix(path: "/run/redis/redis.sock"))
        #expect(configuration.database == 2)
    }

    @Test(arguments: ["redis://", "redis://host/notanumber", "redis://host:99999", "amqp://host", "nonsense"])
    func badURLsAreTypedErrors(_ url: String) {
        let error = #expect(throws: IvyError.self) { try RedisConfiguration(url: url) }
        #expect(error?.code == .invalidURL || error?.code == .unsupportedBackend)
    }

    @Test func aBadURLNeverShowsItsPassword() {
        let error = #expect(throws: IvyError.self) {
            try RedisConfiguration(url: "redis://user:topsecret@host/x")
        }
        #expect(!"\(String(describing: error))".contains("topsecret"))
    }
}

extension RedisConfigurationTests {
    @Test func timeoutsOutOfRangeAreRefusedBeforeConnecting() async throws {
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:1")
        configuration.commandTimeout = .seconds(Int64.max)  // "no timeout", as some write it
        let error = await #expect(throws: IvyError.self) {
            _ = try await RedisConnection.connect(configuration)
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.detail?.hasPrefix("RedisConfiguration.commandTimeout") == true)
        configuration.commandTimeout = .seconds(10)
        configuration.connectTimeout = .zero
        #expect(throws: IvyError.self) { try configuration.validate() }
    }
}
