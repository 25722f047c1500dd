// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Testing

/// The servers integration tests talk to: loopback defaults, overridable by the environment.
public enum Services {
    /// `IVY_REDIS_URL`, else the instance `make services-up` starts.
    public static let redisURL =
        ProcessInfo.processInfo.environment["IVY_REDIS_URL"] ?? "redis://127.0.0.1:6390"

    /// Whether a missing server fails the run (`make test` sets `IVY_REQUIRE_SERVICES=1`).
    public static var areRequired: Bool { ProcessInfo.processInfo.environment["IVY_REQUIRE_SERVICES"] == "1" }

    /// Skips the test with a message when run by hand; fails it when services are required.
    public static func unavailable(_ what: String, _ error: any Error) throws -> Never {
        if areRequired {
            Issue.record("\(what) is required (IVY_REQUIRE_SERVICES=1) but unavailable: \(error)")
            throw error
        }
        try Test.cancel("\(what) unavailable (\(error)); run `make services-up`")
    }

    /// The path of an executable on PATH, such as `redis-server`.
    public static func executable(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
