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

extension TerminationSignal {
    /// Waits until the process receives one of `signals` and returns it; while it waits, those
    /// signals do not end the process (for a server that closes before it exits, as
    /// `ivy dashboard` does).
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled first.
    public static func next(of signals: Set<TerminationSignal>) async throws -> TerminationSignal {
        let watched = Dictionary(uniqueKeysWithValues: signals.map { ($0.number, $0) })
        let received = Promise<TerminationSignal>()
        let id = SignalWatcher.shared.watch(Set(watched.keys)) { number in
            if let signal = watched[number] { _ = received.resolve(signal) }
        }
        defer { SignalWatcher.shared.unwatch(id) }
        return try await received.wait()
    }
}
