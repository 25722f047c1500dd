// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Turns termination signals into calls on a thread of its own.
///
/// Signal dispositions belong to the process, so there is one watcher per process. While a
/// signal is watched, a real handler is installed for it, which writes the signal number to a
/// pipe (the one thing a handler may safely do, keeping `errno` as it found it); the watcher's
/// thread, which unblocks the termination signals for itself since a process can inherit them
/// blocked, reads the pipe and calls whoever watches that signal. When the last watcher of a
/// signal goes, the disposition the process had before is put back (the default, ignored, or
/// someone else's handler); a signal that arrives in between is raised again under it.
final class SignalWatcher: Sendable {
    static let shared = SignalWatcher()

    /// The pipe the C handler writes to: the handler cannot capture, so it is a static constant,
    /// made before any handler is installed. Non-blocking, so that a full pipe (a signal storm)
    /// drops a byte rather than blocking a thread inside a handler; close-on-exec, so that
    /// children do not inherit it.
    private static let pipeEnds: (read: Int32, write: Int32) = {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "pipe failed")
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }()

    /// The signals ``TerminationSignal`` names: the only ones this thread unblocks.
    private static let termination: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT]

    /// A disposition to put back: a C struct, only ever handed to `sigaction`.
    private struct Disposition: @unchecked Sendable {
        var action: sigaction
    }

    private struct State {
        /// Per installed signal, the disposition it had before.
        var previous: [Int32: Disposition] = [:]
        var watchers: [UInt64: (signals: Set<Int32>, handler: @Sendable (Int32) -> Void)] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    private init() {
        let readEnd = Self.pipeEnds.read
        DedicatedThread.start(name: "ivy-signals") { [self] in
            var signals = sigset_t()
            sigemptyset(&signals)
            for number in Self.termination { sigaddset(&signals, number) }
            pthread_sigmask(SIG_UNBLOCK, &signals, nil)
            var byte: UInt8 = 0
            while true {
                let count = read(readEnd, &byte, 1)
                if count < 0 && errno == EINTR { continue }
                guard count == 1 else { return }
                deliver(Int32(byte))
            }
        }
    }

    /// Calls `handler` (on the watcher's thread) for each of `signals` from now on, until
    /// ``unwatch(_:)`` with the id returned.
    func watch(_ signals: Set<Int32>, handler: @escaping @Sendable (Int32) -> Void) -> UInt64 {
        state.withLock { state in
            for number in signals where state.previous[number] == nil {
                var action = sigaction()
                #if canImport(Glibc)
                    action.__sigaction_handler.sa_handler = Self.handle
                #else
                    action.__sigaction_u.__sa_handler = Self.handle
                #endif
                sigemptyset(&action.sa_mask)
                action.sa_flags = SA_RESTART
                var previous = sigaction()
                sigaction(number, &action, &previous)
                state.previous[number] = Disposition(action: previous)
            }
            state.nextID += 1
            state.watchers[state.nextID] = (signals, handler)
            return state.nextID
        }
    }

    /// Stops calling the handler `watch` returned `id` for; signals nobody watches any more get
    /// their previous disposition back.
    func unwatch(_ id: UInt64) {
        state.withLock { state in
            state.watchers[id] = nil
            let watched = state.watchers.values.reduce(into: Set<Int32>()) { $0.formUnion($1.signals) }
            for number in Array(state.previous.keys) where !watched.contains(number) {
                Self.restore(number, &state)
            }
        }
    }

    /// The C handler: async-signal-safe, and `errno` is the interrupted code's.
    private static let handle: @convention(c) (Int32) -> Void = { number in
        let saved = errno
        var byte = UInt8(truncatingIfNeeded: number)
        _ = write(SignalWatcher.pipeEnds.write, &byte, 1)
        errno = saved
    }

    private static func restore(_ number: Int32, _ state: inout State) {
        guard var previous = state.previous.removeValue(forKey: number) else { return }
        sigaction(number, &previous.action, nil)
    }

    private func deliver(_ number: Int32) {
        let handlers = state.withLock { state in
            let handlers = state.watchers.values.filter { $0.signals.contains(number) }.map(\.handler)
            if handlers.isEmpty { Self.restore(number, &state) }
            return handlers
        }
        guard !handlers.isEmpty else {
            // Caught just as its last watcher left: what the process did before decides.
            kill(getpid(), number)
            return
        }
        for handler in handlers { handler(number) }
    }
}
