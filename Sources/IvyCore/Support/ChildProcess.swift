// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// A child process started with `posix_spawn`: its input written and its output read by one
/// thread of its own, its exit awaited by another.
///
/// Shared by ``CommandRunner`` (tasks served by commands) and the tests' `IvyProcess`.
/// `posix_spawn`, not Foundation's `Process`: on Linux `Process.run` crashed now and then (a
/// `memcpy` past a buffer) while other threads opened and closed connections. The child gets
/// fresh pipes for its standard streams (or `/dev/null` for its input), an empty signal mask,
/// default signal handling, and none of the parent's other file descriptors.
///
/// Nothing here blocks the cooperative pool. The output ends when the child exits: whatever it
/// wrote is in the pipes by then and is read, but descendants that still hold the pipes open
/// are not waited for (`sleep 100 &` in a shell command must not hold its result back).
package final class ChildProcess: Sendable {
    /// One of the child's output streams.
    package enum Output: Sendable, Hashable {
        case stdout, stderr
    }

    /// How a child ended.
    package enum Termination: Sendable, Hashable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal ended it.
        case signalled(Int32)
        /// It could not be reaped (something else in this process waited for it).
        case unknown

        package var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signalled(let signal): "killed by \(Self.name(ofSignal: signal))"
            case .unknown: "ended in a way that could not be learned (it could not be reaped)"
            }
        }

        /// `SIGKILL` for 9 and so on; the numbers differ between systems, the names do not.
        package static func name(ofSignal signal: Int32) -> String {
            let names: [Int32: String] = [
                SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
                SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL",
                SIGUSR1: "SIGUSR1",
                SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM",
                SIGTERM: "SIGTERM", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS",
            ]
            return names[signal] ?? "signal \(signal)"
        }
    }

    /// What to run and how.
    package struct Configuration: Sendable {
        /// The program's path (no search of `PATH`).
        package var executable: String
        /// Its arguments after `argv[0]`, which is `executable`.
        package var arguments: [String]
        /// Its whole environment.
        package var environment: [String: String]
        /// Written to its standard input, which is closed after; nil gives it `/dev/null`.
        package var input: [UInt8]?
        /// Whether it leads a process group of its own, so that ``ChildProcess/terminate(grace:)``
        /// reaches everything it started (and a terminal's Ctrl-C does not).
        package var newProcessGroup: Bool
        /// The start of the two threads' names (Linux keeps 15 bytes of a name).
        package var threadName: String

        package init(
            executable: String, arguments: [String], environment: [String: String], input: [UInt8]? = nil,
            newProcessGroup: Bool = false, threadName: String = "ivy-child"
        ) {
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.input = input
            self.newProcessGroup = newProcessGroup
            self.threadName = threadName
        }
    }

    /// The child could not be started.
    package struct SpawnFailed: Error, Sendable, CustomStringConvertible {
        package var executable: String
        package var errorNumber: Int32
        package var description: String {
            "cannot run \(executable): \(String(cString: strerror(errorNumber)))"
        }
    }

    private struct State {
        /// Set when the child has exited, before it is reaped: from then on its pid may be
        /// another process's, and no signal goes to it.
        var hasExited = false
        /// Set once it is reaped.
        var termination: Termination?
        /// When SIGKILL follows the SIGTERM of ``terminate(grace:)``.
        var killAt: ContinuousClock.Instant?
        var hasKilled = false
        /// Set when the end has been reported: nothing is signalled after.
        var hasEnded = false
    }

    package let processIdentifier: Int32
    private let inOwnGroup: Bool
    private let state = Mutex(State())
    private let wake: WakePipe
    private let clock = ContinuousClock()

    /// Starts the child.
    ///
    /// - Parameters:
    ///   - onOutput: Called on the I/O thread with each chunk the child writes, in order.
    ///   - onEnd: Called once, on the I/O thread, after the last `onOutput`, when the child has
    ///     exited and been reaped (and, after ``terminate(grace:)``, once its group is gone or
    ///     SIGKILL has been sent to it).
    /// - Throws: ``SpawnFailed`` when a pipe or the process cannot be made.
    package init(
        _ configuration: Configuration, onOutput: @escaping @Sendable (Output, [UInt8]) -> Void,
        onEnd: @escaping @Sendable (Termination) -> Void
    ) throws(SpawnFailed) {
        let executable = configuration.executable
        // Made here, not as a stored default: out of descriptors is a failed spawn, not a trap.
        guard let wake = WakePipe.make() else {
            throw SpawnFailed(executable: executable, errorNumber: errno)
        }
        self.wake = wake
        let stdout = try Self.makePipe(for: executable)
        let stderr: (read: Int32, write: Int32)
        do { stderr = try Self.makePipe(for: executable) } catch {
            Self.close(stdout.read, stdout.write)
            throw error
        }
        var stdin: (read: Int32, write: Int32)?
        if configuration.input != nil {
            do { stdin = try Self.makePipe(for: executable) } catch {
                Self.close(stdout.read, stdout.write, stderr.read, stderr.write)
                throw error
            }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin.read, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr.write, 2)
        Self.closeTheRest(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if configuration.newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([executable] + configuration.arguments).map { strdup($0) } + [nil]
        let envp = configuration.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        // The child's ends are the child's now.
        Self.close(stdout.write, stderr.write)
        if let stdin { Self.close(stdin.read) }
        guard status == 0 else {
            Self.close(stdout.read, stderr.read)
            if let stdin { Self.close(stdin.write) }
            throw SpawnFailed(executable: executable, errorNumber: status)
        }
        processIdentifier = pid
        inOwnGroup = configuration.newProcessGroup

        let input = stdin.map { ($0.write, configuration.input ?? []) }
        DedicatedThread.start(name: configuration.threadName + "-io") { [self] in
            serve(
                input: input, outputs: [(stdout.read, .stdout), (stderr.read, .stderr)],
                onOutput: onOutput, onEnd: onEnd)
        }
        DedicatedThread.start(name: configuration.threadName + "-wait") { [self] in reap() }
    }

    /// Asks the child (and its group, if it leads one) to stop: SIGTERM now, SIGKILL once
    /// `grace` has passed. Only the first call counts; after the end it does nothing.
    package func terminate(grace: Duration) {
        let asked = state.withLock { state -> Bool in
            guard state.killAt == nil, !state.hasEnded else { return false }
            state.killAt = clock.now.advanced(by: grace)
            sendSignal(SIGTERM, state)
            return true
        }
        // The I/O thread times the SIGKILL; it may be blocked with no deadline yet.
        if asked { wake.signal() }
    }

    /// Sends `signal` to the child, or to its group, while that is safe. Called under the lock.
    ///
    /// The group's id stays reserved while any process of the group lives, even after the
    /// child is reaped, so the group can be signalled until the end is reported; the child's own
    /// pid can be reused once it has exited.
    private func sendSignal(_ signal: Int32, _ state: State) {
        if inOwnGroup {
            if !state.hasEnded { _ = kill(-processIdentifier, signal) }
        } else if !state.hasExited {
            _ = kill(processIdentifier, signal)
        }
    }

    /// The exit watcher: learns of the exit without reaping, so that no signal can reach a
    /// reused pid, then reaps.
    private func reap() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        state.withLock { $0.hasExited = true }
        var status: Int32 = 0
        var reaped = waitpid(processIdentifier, &status, 0)
        while reaped < 0 && errno == EINTR { reaped = waitpid(processIdentifier, &status, 0) }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
        let signal = status & 0x7f
        let termination: Termination =
            reaped < 0 ? .unknown : signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
        state.withLock { $0.termination = termination }
        wake.signal()
    }

    /// The I/O thread: writes the input, reads the output, times SIGKILL, reports the end.
    private func serve(
        input: (descriptor: Int32, bytes: [UInt8])?, outputs: [(descriptor: Int32, stream: Output)],
        onOutput: (Output, [UInt8]) -> Void, onEnd: (Termination) -> Void
    ) {
        // Writing to a pipe nobody reads raises SIGPIPE in the writing thread, which would end
        // the whole process. Blocked in this thread only, the write fails with EPIPE instead; a
        // pending SIGPIPE goes away with the thread, and the process's handling is unchanged.
        var brokenPipe = sigset_t()
        sigemptyset(&brokenPipe)
        sigaddset(&brokenPipe, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &brokenPipe, nil)

        var stdin = input?.descriptor
        var pending = (input?.bytes ?? [])[...]
        var outputs = outputs
        for descriptor in [stdin].compactMap({ $0 }) + outputs.map(\.descriptor) {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        func closeInput() {
            if let descriptor = stdin { Self.close(descriptor) }
            stdin = nil
            pending = []
        }
        /// Reads one chunk: true when it got one, nil when there is nothing yet, false at end
        /// of file or on an error (the caller closes it).
        func read(_ index: Int) -> Bool? {
            let count = buffer.withUnsafeMutableBytes {
                Glibc.read(outputs[index].descriptor, $0.baseAddress, $0.count)
            }
            if count > 0 {
                onOutput(outputs[index].stream, Array(buffer[0..<count]))
                return true
            }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return nil }
            return false
        }
        if pending.isEmpty { closeInput() }

        while true {
            var timeout: Int32 = -1
            let termination = state.withLock { state -> Termination? in
                if let killAt = state.killAt, !state.hasKilled {
                    let left = killAt - clock.now
                    if left <= .zero {
                        state.hasKilled = true
                        sendSignal(SIGKILL, state)
                    } else {
                        // Rounded up, so as not to wake a millisecond early and spin.
                        timeout = Int32(clamping: min(left.wholeMilliseconds, Int(Int32.max) - 1) + 1)
                        // The child has ended and the rest of its group got the SIGTERM too:
                        // they are usually gone within moments, so look again soon rather than
                        // at the SIGKILL deadline.
                        if state.termination != nil { timeout = min(timeout, 10) }
                    }
                }
                return state.termination
            }
            if let termination {
                // What the child wrote is in the pipes; more from its descendants is not
                // awaited. Bounded, so that a descendant writing without end cannot keep this
                // loop reading.
                for index in outputs.indices {
                    var budget = 16
                    while budget > 0, read(index) == true { budget -= 1 }
                    Self.close(outputs[index].descriptor)
                }
                outputs = []
                closeInput()
                let ended = state.withLock { state -> Bool in
                    // A termination must still reach the group's survivors with SIGKILL.
                    let waitsForKill =
                        inOwnGroup && state.killAt != nil && !state.hasKilled
                        && kill(-processIdentifier, 0) == 0
                    if !waitsForKill { state.hasEnded = true }
                    return state.hasEnded
                }
                if ended {
                    onEnd(termination)
                    return
                }
            }

            var descriptors = [pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)]
            if let stdin { descriptors.append(pollfd(fd: stdin, events: Int16(POLLOUT), revents: 0)) }
            let firstOutput = descriptors.count
            for output in outputs {
                descriptors.append(pollfd(fd: output.descriptor, events: Int16(POLLIN), revents: 0))
            }
            guard poll(&descriptors, nfds_t(descriptors.count), timeout) > 0 else { continue }
            if descriptors[0].revents != 0 { wake.drain() }
            if let descriptor = stdin, descriptors[1].revents != 0 {
                let written = pending.withUnsafeBytes {
                    write(descriptor, $0.baseAddress, min($0.count, 65536))
                }
                if written > 0 {
                    pending = pending.dropFirst(written)
                    if pending.isEmpty { closeInput() }
                } else if !(written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                    // EPIPE: the child does not read its input (or no longer).
                    closeInput()
                }
            }
            // From the last, so that removing one does not shift the others.
            for index in outputs.indices.reversed() where descriptors[firstOutput + index].revents != 0 {
                if read(index) == false {
                    Self.close(outputs[index].descriptor)
                    outputs.remove(at: index)
                }
            }
        }
    }

    /// A pipe whose ends close on exec (the child gets copies on 0, 1 and 2 only).
    private static func makePipe(for executable: String) throws(SpawnFailed) -> (read: Int32, write: Int32) {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { throw SpawnFailed(executable: executable, errorNumber: errno) }
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return (descriptors[0], descriptors[1])
    }

    private static func close(_ descriptors: Int32...) {
        for descriptor in descriptors { _ = Glibc.close(descriptor) }
    }

    /// Closes every descriptor from 3 up in the child (`posix_spawn_file_actions_addclosefrom_np`,
    /// glibc 2.34, which Swift's Glibc module does not import): connections this process holds
    /// must not outlive it in a child, nor keep a broker's socket open. Without it (older glibc)
    /// the close-on-exec flag, which Foundation and Ivy set on their own descriptors, is all.
    private static func closeTheRest(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom =
            @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
    }
}
