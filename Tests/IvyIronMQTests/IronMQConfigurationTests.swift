// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyIronMQ
import Testing

/// URLs, environment variables and iron.json, as Iron.io's clients read them.
@Suite("IronMQ configuration")
struct IronMQConfigurationTests {
    private let none: [URL] = []

    @Test func aURLNamesEverything() throws {
        let https = try IronMQConfiguration(
            url: "ironmq://tok3n@mq.example.com/5f0abc", environment: [:], configurationFiles: none)
        #expect(https.scheme == "https")
        #expect(https.host == "mq.example.com")
        #expect(https.port == 443)
        #expect(https.projectID == "5f0abc")
        #expect(https.token.exposedValue == "tok3n")
        #expect(https.minimumReservation == .seconds(30))
        let local = try IronMQConfiguration(
            url: "ironmq+http://t@127.0.0.1:8690/p1?min_timeout=1", environment: [:], configurationFiles: none
        )
        #expect(local.scheme == "http")
        #expect(local.port == 8690)
        #expect(local.minimumReservation == .seconds(1))
    }

    @Test func theTokenNeverShows() throws {
        let configuration = try IronMQConfiguration(
            url: "ironmq+http://s3cret-token@127.0.0.1:8690/p1", environment: [:], configurationFiles: none)
        #expect(configuration.endpoint == "ironmq+http://***@127.0.0.1:8690/p1")
        #expect(!"\(configuration)".contains("s3cret"))
        for bad in [
            "ironmq+http://s3cret-token@127.0.0.1:99999/p1", "ironmq://s3cret-token@/",
            "ironmq+ftp://s3cret-token@h/p",
        ] {
            let error = #expect(throws: IvyError.self) {
                _ = try IronMQConfiguration(url: bad, environment: [:], configurationFiles: none)
            }
            #expect(error.map { "\($0)" }?.contains("s3cret") == false, "\(bad)")
        }
    }

    @Test func whatTheURLLeavesOutComesFromTheEnvironmentThenIronJSON() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ironjson-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("iron.json")
        try Data(
            #"{"token":"from-file","project_id":"fileproject","host":"file.example","port":8080,"protocol":"http"}"#
                .utf8
        )
        .write(to: file)
        let fromFile = try IronMQConfiguration(url: "ironmq://", environment: [:], configurationFiles: [file])
        #expect(fromFile.token.exposedValue == "from-file")
        #expect(fromFile.projectID == "fileproject")
        #expect(fromFile.host == "file.example")
        #expect(fromFile.port == 8080)
        #expect(fromFile.scheme == "http")
        let fromEnvironment = try IronMQConfiguration(
            url: "ironmq://", environment: ["IRON_TOKEN": "from-env", "IRON_PROJECT_ID": "envproject"],
            configurationFiles: [file])
        #expect(fromEnvironment.token.exposedValue == "from-env")
        #expect(fromEnvironment.projectID == "envproject")
        #expect(
            fromEnvironment.host == "file.example", "what the environment lacks still comes from the file")
        // A host in the URL is reached over HTTPS on its default port, whatever the settings say.
        let named = try IronMQConfiguration(
            url: "ironmq://x@mq.example.com/p", environment: [:], configurationFiles: [file])
        #expect(named.scheme == "https" && named.port == 443)
    }

    @Test func anIronJSONThatDoesNotParseIsNamedWithoutItsText() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ironjson-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("iron.json")
        try Data(#"{"token":"s3cret-in-file","project_id":"p""#.utf8).write(to: file)  // cut short
        let error = #expect(throws: IvyError.self) {
            _ = try IronMQConfiguration(url: "ironmq://", environment: [:], configurationFiles: [file])
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.detail?.contains("skipped, not a JSON object: \(file.path)") == true)
        #expect(error.map { "\($0)" }?.contains("s3cret-in-file") == false)
        // A URL that names everything does not need the file.
        let named = try IronMQConfiguration(
            url: "ironmq://tok@mq.example.com/p", environment: [:], configurationFiles: [file])
        #expect(named.projectID == "p")
    }

    @Test func missingOrBadSettingsAreConfigurationErrors() {
        for (url, environment) in [
            ("ironmq://", [String: String]()), ("ironmq://h/p", [:]), ("ironmq://tok@h", [:]),
            ("ironmq://tok@h/p?min_timeout=0", [:]),
            ("ironmq://", ["IRON_TOKEN": "a b", "IRON_PROJECT_ID": "p"]),
            ("ironmq://", ["IRON_TOKEN": "t", "IRON_PROJECT_ID": "p", "IRON_PROTOCOL": "gopher"]),
        ] {
            #expect(throws: IvyError.self, "\(url) \(environment)") {
                _ = try IronMQConfiguration(url: url, environment: environment, configurationFiles: none)
            }
        }
    }
}
