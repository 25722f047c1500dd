// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
@_exported public import IvyAMQP
@_exported public import IvyCore
@_exported public import IvyIronMQ
@_exported public import IvyRedis
@_exported public import IvyRedisNotify

/// Where a queue or notifier lives: a URL, or the in-process one.
public enum BackendLocation: Sendable, ExpressibleByStringLiteral {
    /// `memory://`, `redis://[user:password@]host[:port][/db]`, `unix:///path.sock`, or (queues
    /// only) `ironmq://TOKEN@host[:port]/PROJECT_ID`, `ironmq+http://…`,
    /// `amqp://user:password@host[:port]/vhost` and `amqps://…`.
    case url(String)
    /// The in-process backend or notifier.
    case memory

    public init(stringLiteral value: String) { self = .url(value) }
}

/// A parsed backend URL.
enum BackendURL {
    case memory
    case redis(String)
    case ironMQ(String)
    case amqp(String)

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
            case "redis", "rediss", "redis+cluster", "rediss+cluster", "unix": self = .redis(text)
            case "ironmq", "ironmq+http", "ironmq+https": self = .ironMQ(text)
            case "amqp", "amqps": self = .amqp(text)
            default:
                throw IvyError(
                    .unsupportedBackend, endpoint: Redaction.redact(url: text),
                    detail:
                        "supported schemes: memory://, redis://, rediss://, redis+cluster://, rediss+cluster://, unix://, ironmq://, ironmq+http://, amqp://, amqps://"
                )
            }
        }
    }
}

extension BackendURL {
    /// The URL of a broker that carries queues but no results.
    var queueOnly: String? {
        switch self {
        case .ironMQ(let url), .amqp(let url): url
        case .memory, .redis: nil
        }
    }
}
