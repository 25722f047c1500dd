// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
public import IvyCore

/// Where an IronMQ v3 server is and how to reach it.
///
/// From a URL: `ironmq://TOKEN@host[:port]/PROJECT_ID` (HTTPS, certificates verified) or
/// `ironmq+http://TOKEN@host:port/PROJECT_ID` (plain HTTP, for the local server,
/// `Tools/ironmq-emulator`). Parts the URL leaves out come, as with Iron.io's own clients, from
/// `IRON_TOKEN`, `IRON_PROJECT_ID`, `IRON_HOST`, `IRON_PORT`, `IRON_PROTOCOL`, then `./iron.json`,
/// then `~/.iron.json` (keys `token`, `project_id`, `host`, `port`, `protocol`): `ironmq://`
/// alone takes everything from there. The token never appears in ``endpoint`` or in errors.
public struct IronMQConfiguration: Sendable {
    /// `https` or `http`.
    public var scheme: String
    public var host: String
    public var port: Int
    public var projectID: String
    public var token: Secret
    /// How long connecting may take.
    public var connectTimeout: Duration
    /// How long a request may take, on top of a long poll's wait.
    public var requestTimeout: Duration
    /// Tries of a request that failed with 503, another 5xx or no connection, the first included.
    public var attempts: Int
    /// The shortest reservation the server grants: IronMQ's is 30 s. A shorter visibility is
    /// rounded up to it. Settable from a URL's `min_timeout` query item (seconds), for a local
    /// server started with a shorter one.
    public var minimumReservation: Duration

    /// The hosted service's default host.
    public static let defaultHost = "mq-aws-us-east-1-1.iron.io"

    /// Reads `url`, filling what it leaves out from `environment` and the `iron.json` files.
    ///
    /// - Throws: ``IvyError/Code/invalidURL`` (the URL printed with its token as `***`) or
    ///   ``IvyError/Code/invalidConfiguration`` when no token or project id is found anywhere.
    public init(
        url: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        configurationFiles: [URL] = Self.defaultConfigurationFiles
    ) throws(IvyError) {
        let redacted = Redaction.redact(url: url)
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw IvyError(
                .invalidURL, endpoint: redacted, detail: "expected ironmq://TOKEN@host[:port]/PROJECT_ID")
        }
        let (files, skipped) = Self.read(configurationFiles)
        // Said where a setting is missing: a file that does not parse explains why.
        let skippedNote =
            skipped.isEmpty ? "" : " (skipped, not a JSON object: \(skipped.joined(separator: ", ")))"
        func setting(_ environmentName: String, _ fileKey: String) -> String? {
            if let value = environment[environmentName], !value.isEmpty { return value }
            for file in files { if let value = file[fileKey], !value.isEmpty { return value } }
            return nil
        }
        let hostPart = components.host.flatMap { $0.isEmpty ? nil : $0 }
        switch scheme {
        // A host named in the URL is reached over HTTPS; one from the settings, as they say.
        case "ironmq":
            self.scheme =
                hostPart == nil ? setting("IRON_PROTOCOL", "protocol")?.lowercased() ?? "https" : "https"
        case "ironmq+http": self.scheme = "http"
        case "ironmq+https": self.scheme = "https"
        default:
            throw IvyError(
                .unsupportedBackend, endpoint: redacted, detail: "expected ironmq:// or ironmq+http://")
        }
        guard ["http", "https"].contains(self.scheme) else {
            throw IvyError(
                .invalidConfiguration, endpoint: redacted, detail: "IRON_PROTOCOL must be http or https")
        }
        let user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding }.flatMap {
            $0.isEmpty ? nil : $0
        }
        guard let token = user ?? setting("IRON_TOKEN", "token") else {
            throw IvyError(
                .invalidConfiguration, endpoint: redacted,
                detail:
                    "no token: put it in the URL (ironmq://TOKEN@host/PROJECT_ID), IRON_TOKEN or iron.json"
                    + skippedNote)
        }
        // It travels in a header line: nothing that could end the line or the header.
        guard token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw IvyError(
                .invalidConfiguration, endpoint: redacted, detail: "the token must be printable ASCII")
        }
        self.token = Secret(token)
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let project = path.isEmpty ? setting("IRON_PROJECT_ID", "project_id") : path, !project.isEmpty,
            project.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else {
            throw IvyError(
                .invalidConfiguration, endpoint: redacted,
                detail: "no project id (letters and digits): the URL's path, IRON_PROJECT_ID or iron.json"
                    + skippedNote)
        }
        projectID = project
        host = hostPart ?? setting("IRON_HOST", "host") ?? Self.defaultHost
        let defaultPort = self.scheme == "https" ? 443 : 80
        if let port = components.port {
            self.port = port
        } else if hostPart == nil, let text = setting("IRON_PORT", "port") {
            guard let port = Int(text) else {
                throw IvyError(
                    .invalidConfiguration, endpoint: redacted, detail: "IRON_PORT must be a number")
            }
            self.port = port
        } else {
            port = defaultPort
        }
        connectTimeout = .seconds(10)
        requestTimeout = .seconds(30)
        attempts = 5
        minimumReservation = .seconds(30)
        for item in components.queryItems ?? [] where item.name == "min_timeout" {
            guard let seconds = item.value.flatMap(Double.init), seconds.isFinite, seconds > 0,
                seconds <= 86_400
            else {
                throw IvyError(
                    .invalidURL, endpoint: redacted, detail: "min_timeout must be seconds, above 0")
            }
            minimumReservation = .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        try validate()
    }

    /// `./iron.json`, then `~/.iron.json`: where Iron.io's clients look.
    public static var defaultConfigurationFiles: [URL] {
        [
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(
                "iron.json"),
            FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".iron.json"),
        ]
    }

    /// Checks the values a program may set after parsing.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the first field out of range.
    public func validate() throws(IvyError) {
        try IvyError.check("IronMQConfiguration.port", port, in: 1...65_535)
        try IvyError.check(
            "IronMQConfiguration.connectTimeout", connectTimeout, in: .milliseconds(1)...(.seconds(3600)))
        try IvyError.check(
            "IronMQConfiguration.requestTimeout", requestTimeout, in: .milliseconds(1)...(.seconds(3600)))
        try IvyError.check("IronMQConfiguration.attempts", attempts, in: 1...100)
        guard !host.isEmpty, !token.exposedValue.isEmpty else {
            throw IvyError(.invalidConfiguration, endpoint: endpoint, detail: "empty host or token")
        }
    }

    /// The server for logs and errors, the token as `***`.
    public var endpoint: String {
        let shownScheme = scheme == "https" ? "ironmq" : "ironmq+http"
        return "\(shownScheme)://***@\(host):\(port)/\(projectID)"
    }

    /// `scheme://host:port/3/projects/PROJECT_ID`, the base of every request.
    var baseURL: String { "\(scheme)://\(host):\(port)/3/projects/\(projectID)" }

    /// The string settings of each configuration file that exists and parses, and the paths of
    /// those that exist but do not parse (skipped; their text is never shown, it may hold a token).
    private static func read(_ files: [URL]) -> (settings: [[String: String]], skipped: [String]) {
        var settings: [[String: String]] = []
        var skipped: [String] = []
        for url in files {
            guard let data = try? Data(contentsOf: url) else { continue }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                skipped.append(url.path)
                continue
            }
            settings.append(
                object.compactMapValues { value in
                    switch value {
                    case let text as String: text
                    case let number as NSNumber: number.stringValue
                    default: nil
                    }
                })
        }
        return (settings, skipped)
    }
}
