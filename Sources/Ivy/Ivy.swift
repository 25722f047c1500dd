// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
@_exported public import IvyCore
@_exported public import IvyRedis
@_exported public import IvyRedisNotify

/// Where a queue or notifier lives: a URL, or an instance you made.
public enum BackendLocation: Sendable, ExpressibleByStringLiteral {
    /// `memory://`, `redis://[user:password@]host[:port][/db]` or `unix:///path.sock`.
    case url(String)
    /// The in-process backend or notifier.
    case memory

    public init(stringLiteral value: String) { self = .url(value) }
}

extension Ivy {
    /// Makes a producer/worker from backend URLs.
    ///
    /// ```swift
    /// let ivy = try await Ivy(registry: registry, queue: .url("memory://"), notifier: .url("memory://"))
    /// ```
    ///
    /// - Parameters:
    ///   - registry: The tasks it calls and runs.
    ///   - queue: The queue backend, by URL or ``BackendLocation/memory``.
    ///   - notifier: The notifier results travel through, by URL or ``BackendLocation/memory``.
    ///   - encryptionKey: Encrypts messages and results (authenticated format); it replaces
    ///     ``IvyOptions/encryption``. Use ``MessageEncryption`` through `options` for rotation,
    ///     the node-ivy format or `requireEncryption`.
    ///   - options: Result timeout, channel, logger and encryption.
    /// - Throws: ``IvyError/Code/invalidURL`` or ``IvyError/Code/unsupportedBackend``; the message
    ///   shows the URL with its credentials replaced by `***`.
    public convenience init(
        registry: TaskRegistry, queue: BackendLocation = .memory, notifier: BackendLocation = .memory,
        encryptionKey: Secret? = nil, options: IvyOptions = .init()
    ) async throws {
        var options = options
        if let encryptionKey { options.encryption = MessageEncryption(key: encryptionKey) }
        try options.validate()
        let backend = try await Self.backend(queue, logger: options.logger)
        let resultNotifier: any Notifier
        do { resultNotifier = try await Self.notifier(notifier, logger: options.logger) } catch {
            await backend.close()
            throw error
        }
        try await self.init(registry: registry, backend: backend, notifier: resultNotifier, options: options)
    }

    /// The queue backend a location names, connected.
    public static func backend(_ location: BackendLocation, logger: any IvyLogger = StderrLogger())
        async throws
        -> any QueueBackend
    {
        switch try BackendURL(location) {
        case .memory: MemoryQueueBackend()
        case .redis(let url): try await RedisStreamBackend.connect(url: url, logger: logger)
        }
    }

    /// The notifier a location names, connected.
    public static func notifier(_ location: BackendLocation, logger: any IvyLogger = StderrLogger())
        async throws
        -> any Notifier
    {
        switch try BackendURL(location) {
        case .memory: MemoryNotifier()
        case .redis(let url): try await RedisNotifier.connect(url: url, logger: logger)
        }
    }
}

/// Runs `body` with an ``Ivy`` made from backend URLs and closes it on every path.
///
/// ```swift
/// let value = try await withIvy(registry: registry, queue: "memory://", notifier: "memory://") { ivy in
///     try await ivy.call(factorial, 5)
/// }
/// ```
public func withIvy<Result: Sendable>(
    registry: TaskRegistry, queue: BackendLocation = .memory, notifier: BackendLocation = .memory,
    encryptionKey: Secret? = nil, options: IvyOptions = .init(), _ body: (Ivy) async throws -> Result
) async throws -> Result {
    let ivy = try await Ivy(
        registry: registry, queue: queue, notifier: notifier, encryptionKey: encryptionKey, options: options)
    let result: Result
    do { result = try await body(ivy) } catch {
        await ivy.close()
        throw error
    }
    await ivy.close()
    return result
}

/// A parsed backend URL.
enum BackendURL {
    case memory
    case redis(String)

    init(_ location: BackendLocation) throws(IvyError) {
        switch location {
        case .memory: self = .memory
        case .url(let text):
            guard let schemeEnd = text.range(of: "://") else {
                throw IvyError(
                    .invalidURL, endpoint: Redaction.redact(url: text), detail: "expected scheme://…")
            }
            let scheme = text[..<schemeEnd.lowerBound].lowercased()
            switch scheme {
            case "memory": self = .memory
            case "redis", "unix": self = .redis(text)
            default:
                throw IvyError(
                    .unsupportedBackend, endpoint: Redaction.redact(url: text),
                    detail: "supported schemes: memory://, redis://, unix://")
            }
        }
    }
}
