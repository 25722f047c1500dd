// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// How much a log line matters.
public enum LogLevel: Int, Sendable, Comparable, CustomStringConvertible {
    case trace, debug, info, notice, warning, error

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        }
    }
}

/// Where Ivy's library code writes what it has to say; it never prints.
///
/// Metadata carries ids and names, never message bodies or secrets. Plug in your own logging
/// system by conforming a type to this protocol.
public protocol IvyLogger: Sendable {
    /// The least important level this logger writes; lower ones are skipped before formatting.
    var minimumLevel: LogLevel { get }
    /// Writes one entry.
    func log(_ level: LogLevel, _ message: String, metadata: [String: String])
}

extension IvyLogger {
    @inlinable
    public func isEnabled(_ level: LogLevel) -> Bool { level >= minimumLevel }

    public func debug(_ message: @autoclosure () -> String, _ metadata: [String: String] = [:]) {
        if isEnabled(.debug) { log(.debug, message(), metadata: metadata) }
    }
    public func info(_ message: @autoclosure () -> String, _ metadata: [String: String] = [:]) {
        if isEnabled(.info) { log(.info, message(), metadata: metadata) }
    }
    public func warning(_ message: @autoclosure () -> String, _ metadata: [String: String] = [:]) {
        if isEnabled(.warning) { log(.warning, message(), metadata: metadata) }
    }
    public func error(_ message: @autoclosure () -> String, _ metadata: [String: String] = [:]) {
        if isEnabled(.error) { log(.error, message(), metadata: metadata) }
    }
}

/// The default logger: one line per entry on standard error.
public struct StderrLogger: IvyLogger {
    public var minimumLevel: LogLevel
    public var label: String

    public init(label: String = "ivy", minimumLevel: LogLevel = .warning) {
        self.label = label
        self.minimumLevel = minimumLevel
    }

    public func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {
        var line = "\(label) \(level): \(message)"
        for key in metadata.keys.sorted() { line += " \(key)=\(metadata[key]!)" }
        line += "\n"
        // One write(2) per line keeps lines from concurrent tasks whole.
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

/// A logger that drops everything; for tests and benchmarks.
public struct SilentLogger: IvyLogger {
    public var minimumLevel: LogLevel { .error }
    public init() {}
    public func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {}
}
