// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// A signal that asks a process to end, for ``IvyWorker/run(untilSignal:onSignal:)``.
public struct TerminationSignal: Sendable, Hashable, CustomStringConvertible {
    /// The signal's number on this system.
    public let number: Int32
    private let name: String

    /// SIGTERM: what service managers and container runtimes send to stop a process.
    public static var terminate: Self { .init(number: SIGTERM, name: "SIGTERM") }
    /// SIGINT: Control-C in a terminal.
    public static var interrupt: Self { .init(number: SIGINT, name: "SIGINT") }
    /// SIGHUP: the terminal went away.
    public static var hangUp: Self { .init(number: SIGHUP, name: "SIGHUP") }
    /// SIGQUIT: Control-\ in a terminal.
    public static var quit: Self { .init(number: SIGQUIT, name: "SIGQUIT") }

    public var description: String { name }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.number == rhs.number }
    public func hash(into hasher: inout Hasher) { hasher.combine(number) }
}
