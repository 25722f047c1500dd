// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyAMQP
import IvyCore
import Testing

/// AMQP URLs as RabbitMQ's URI spec reads them.
@Suite("AMQP configuration")
struct AMQPConfigurationTests {
    @Test func aURLNamesEverything() throws {
        let plain = try AMQPConfiguration(url: "amqp://ivy:s3cret@rabbit.example:5690/ivytest")
        #expect(plain.scheme == "amqp")
        #expect(plain.host == "rabbit.example")
        #expect(plain.port == 5690)
        #expect(plain.virtualHost == "ivytest")
        #expect(plain.user == "ivy")
        #expect(plain.password.exposedValue == "s3cret")
        #expect(plain.queueType == .classic)
        #expect(plain.heartbeat == .seconds(30))
        #expect(plain.sendDeadline == .seconds(12))
        #expect(plain.recycleInterval == .seconds(3600))
        let tls = try AMQPConfiguration(
            url:
                "amqps://rabbit.example?queue_type=quorum&heartbeat=0&cacertfile=/etc/ca.pem&send_deadline=2.5"
        )
        #expect(tls.port == 5671)
        #expect(tls.user == "guest" && tls.password.exposedValue == "guest")
        #expect(tls.virtualHost == "/")
        #expect(tls.queueType == .quorum)
        #expect(tls.heartbeat == .zero)
        #expect(tls.caCertificateFile == "/etc/ca.pem")
        #expect(tls.sendDeadline == .milliseconds(2500))
    }

    @Test func failoverNamesTheClustersOtherNodes() throws {
        let cluster = try AMQPConfiguration(
            url: "amqps://ivy:s3cret@n1:5700/v?failover=n2,n3:5702,%5B::1%5D:5703&queue_type=quorum")
        #expect(cluster.failover.map(\.host) == ["n2", "n3", "[::1]"])
        #expect(cluster.failover.map(\.port) == [5671, 5702, 5703], "the scheme's port where none is given")
        for bad in [
            "n2,", "n2:0", "n2:99999", "u:p@n2", "n2/vhost", String(repeating: "n,", count: 16) + "n",
        ] {
            let error = #expect(throws: IvyError.self, "failover=\(bad)") {
                _ = try AMQPConfiguration(url: "amqp://ivy:s3cret@n1/v?failover=\(bad)")
            }
            #expect(error?.code == .invalidURL)
            #expect(error.map { "\($0)" }?.contains("s3cret") == false)
        }
    }

    @Test(arguments: [
        ("amqp://h", "/"), ("amqp://h/", "/"), ("amqp://h/%2F", "/"), ("amqp://h/%2Fprod", "/prod"),
        ("amqp://h/a%20b", "a b"), ("amqp://h/caf%C3%A9", "café"),
    ])
    func theVirtualHostIsThePathPercentDecoded(_ url: String, _ vhost: String) throws {
        #expect(try AMQPConfiguration(url: url).virtualHost == vhost)
    }

    @Test func percentEncodedCredentialsAreDecodedAndThePasswordNeverShows() throws {
        let configuration = try AMQPConfiguration(url: "amqp://us%40er:p%40ss%3Aw0rd@h/v")
        #expect(configuration.user == "us@er")
        #expect(configuration.password.exposedValue == "p@ss:w0rd")
        #expect(!configuration.endpoint.contains("w0rd"))
        #expect(configuration.endpoint.contains("***"))
    }

    @Test(arguments: [
        "amqp://", "amqp:///v", "amqp://h/a/b", "amqp://h?queue_type=stream", "amqp://h?heartbeat=-1",
        "amqp://h?heartbeat=abc", "amqp://h?send_deadline=0", "amqp://h?nonsense=1", "amqp://h?cacertfile=/x",
        "amqps://h?certfile=/c", "amqp://h:99999", "amqp://h?retirement=86401",
    ])
    func badURLsAreTypedErrorsThatDoNotShowThePassword(_ url: String) {
        let withPassword = url.replacingOccurrences(of: "://", with: "://u:t0psecret@")
        let error = #expect(throws: IvyError.self) { _ = try AMQPConfiguration(url: withPassword) }
        #expect(error?.code == .invalidURL || error?.code == .invalidConfiguration)
        #expect(error.map { "\($0)" }?.contains("t0psecret") == false)
    }

    @Test func anotherSchemeIsNotThisBackend() {
        let error = #expect(throws: IvyError.self) { _ = try AMQPConfiguration(url: "redis://h") }
        #expect(error?.code == .unsupportedBackend)
    }
}
