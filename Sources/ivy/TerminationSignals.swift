// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM and SIGINT, turned into calls on a thread of their own.
///
/// A real handler (installed synchronously by ``start()``, so no signal can slip by in a start-up
/// window) writes the signal number to a pipe, the one thing a handler may safely do; the
/// signal thread reads the pipe and calls the registered handler. The signals are also unblocked
/// on the main thread, since a child inherits its parent's blocked set and some parents block
/// them. With no handler registered (demo, bench) a signal ends the process as it would by
/// default, with status 128 + the signal number.
final class TerminationSignals: Sendable {
    /// Made by `main` before anything else runs; read-only afterwards.
    static let shared = TerminationSignals()

    /// The pipe the C handler writes to. A static constant: the handler cannot capture, and it
    /// is initialised before the handler is installed.
    private static let pipeEnds: (read: Int32, write: Int32) = {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "pipe failed")
        return (ends[0], ends[1])
    }()

    private let handler = Mutex<(@Sendable (Int32) -> Void)?>(nil)

    private init() {
        let ends = Self.pipeEnds
        for number in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(TerminationSignals.pipeEnds.write, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
        DedicatedThread.start(name: "ivy-signals") { [self] in
            var byte: UInt8 = 0
            while true {
                let count = read(ends.read, &byte, 1)
                if count < 0 && errno == EINTR { continue }
                guard count == 1 else { return }
                let received = Int32(byte)
                if let handler = handler.withLock({ $0 }) {
                    handler(received)
                } else {
                    exit(128 + received)
                }
            }
        }
    }

    /// Installs the handlers and starts the signal thread; call first thing in `main`.
    static func start() { _ = shared }

    /// Calls `body` (on the signal thread) for each SIGTERM or SIGINT from now on.
    func onSignal(_ body: @escaping @Sendable (Int32) -> Void) {
        handler.withLock { $0 = body }
    }
}
