// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Turns termination signals into calls on a thread of its own.
///
/// Signal dispositions belong to the process, so there is one watcher per process. For each
/// watched signal a real handler is installed, which writes the signal number to a pipe, the one
/// thing a handler may safely do; the watcher's thread (which unblocks every signal for itself,
/// since a process can inherit a blocked set) reads the pipe and calls whoever watches that
/// signal. A signal nobody watches any more gets its default action back and is raised again,
/// so it ends the process as it would have without Ivy (status 128 + its number).
final class SignalWatcher: Sendable {
    static let shared = SignalWatcher()

    /// The pipe the C handler writes to: the handler cannot capture, so it is a static constant,
    /// made before any handler is installed.
    private static let pipeEnds: (read: Int32, write: Int32) = {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "pipe failed")
        return (ends[0], ends[1])
    }()

    private struct State {
        var installed: Set<Int32> = []
        var watchers: [UInt64: (signals: Set<Int32>, handler: @Sendable (Int32) -> Void)] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    private init() {
        let readEnd = Self.pipeEnds.read
        DedicatedThread.start(name: "ivy-signals") { [self] in
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_UNBLOCK, &all, nil)
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
            for number in signals where !state.installed.contains(number) {
                var action = sigaction()
                #if canImport(Glibc)
                    action.__sigaction_handler.sa_handler = { number in
                        var byte = UInt8(truncatingIfNeeded: number)
                        _ = write(SignalWatcher.pipeEnds.write, &byte, 1)
                    }
                #else
                    action.__sigaction_u.__sa_handler = { number in
                        var byte = UInt8(truncatingIfNeeded: number)
                        _ = write(SignalWatcher.pipeEnds.write, &byte, 1)
                    }
                #endif
                sigemptyset(&action.sa_mask)
                action.sa_flags = SA_RESTART
                sigaction(number, &action, nil)
                state.installed.insert(number)
            }
            state.nextID += 1
            state.watchers[state.nextID] = (signals, handler)
            return state.nextID
        }
    }

    /// Stops calling the handler `watch` returned `id` for.
    func unwatch(_ id: UInt64) {
        _ = state.withLock { $0.watchers.removeValue(forKey: id) }
    }

    private func deliver(_ number: Int32) {
        let handlers = state.withLock { state in
            let handlers = state.watchers.values.filter { $0.signals.contains(number) }.map(\.handler)
            if handlers.isEmpty {
                signal(number, SIG_DFL)
                state.installed.remove(number)
            }
            return handlers
        }
        guard !handlers.isEmpty else {
            kill(getpid(), number)
            return
        }
        for handler in handlers { handler(number) }
    }
}
