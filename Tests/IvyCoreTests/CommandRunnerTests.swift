// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyTestSupport
import Testing

@testable import IvyCore

#if canImport(Glibc)
    import Glibc
#endif

/// Commands as task bodies (`ivy worker --exec`): what goes in, what comes out, and what is
/// left running afterwards (nothing).
@Suite("CommandRunner")
struct CommandRunnerTests {
    /// Runs `command` with JSON `arguments` (each a JSON text).
    private func run(
        _ command: String, _ arguments: [String] = [], runner: CommandRunner = CommandRunner()
    ) async throws -> RawJSON {
        var values: [RawJSON] = []
        for argument in arguments { values.append(try RawJSON(validating: argument)) }
        return try await runner.run(command, arguments: values)
    }

    @Test func theResultIsTheJSONValueTheCommandPrints() async throws {
        let result = try await run(#"printf ' {"a": [1, 2.5]}\n\n'"#)
        #expect(result.text == #"{"a": [1, 2.5]}"#)
    }

    @Test func theArgumentsArriveOnStandardInputAsOneArray() async throws {
        let result = try await run("cat", ["1", #""two""#, #"{"x": null}"#])
        #expect(result.text == #"[1,"two",{"x": null}]"#)
        let none = try await run("cat")
        #expect(none.text == "[]")
    }

    @Test func theRunsIdsAreInTheEnvironment() async throws {
        let context = TaskContext(
            taskID: "t-42", taskName: "tool.env", attempt: 3, queue: "tool", messageID: "m-1")
        let result = try await TaskContext.$current.withValue(context) {
            try await run(
                #"printf '["%s","%s",%s,"%s"]' "$IVY_TASK_ID" "$IVY_TASK_NAME" "$IVY_ATTEMPT" "$HOME""#)
        }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? ""
        #expect(result.text == #"["t-42","tool.env",3,"\#(home)"]"#)
        // Outside a task run there are none.
        let outside = try await run(#"printf '"%s"' "${IVY_TASK_ID-unset}${IVY_ATTEMPT-}""#)
        #expect(outside.text == #""unset""#)
    }

    @Test func aFailingCommandReportsItsLastLineOfStandardError() async throws {
        let failure = await #expect(throws: TaskFailure.self) {
            try await run(#"echo first >&2; echo "  the last words  " >&2; printf '\n \n' >&2; exit 3"#)
        }
        #expect(failure?.name == "CommandFailed")
        #expect(failure?.message == "the last words")
        #expect(failure?.retryable == true)
    }

    @Test func aSilentFailureSaysItsExitStatus() async throws {
        let failure = await #expect(throws: TaskFailure.self) { try await run("echo '\"ignored\"'; exit 7") }
        #expect(failure?.name == "CommandFailed")
        #expect(failure?.message == "exited with status 7")
    }

    @Test func aCommandEndedByASignalSaysWhich() async throws {
        let failure = await #expect(throws: TaskFailure.self) {
            try await run("echo dying >&2; kill -SEGV $$")
        }
        #expect(failure?.name == "CommandFailed")
        #expect(failure?.message == "killed by SIGSEGV: dying")
        #expect(failure?.retryable == true)
    }

    @Test func anUnknownProgramFailsWithTheShellsMessage() async throws {
        let failure = await #expect(throws: TaskFailure.self) { try await run("no-such-program-for-ivy 1 2") }
        #expect(failure?.name == "CommandFailed")
        #expect(failure?.message.contains("no-such-program-for-ivy") == true)
        #expect(failure?.message.contains("not found") == true)
    }

    @Test(arguments: ["echo 'not json'", "echo '1 2'", "echo '{\"a\":'", "printf '\\377'"])
    func outputThatIsNotOneJSONValueFailsForGood(_ command: String) async throws {
        let failure = await #expect(throws: TaskFailure.self) { try await run(command) }
        #expect(failure?.name == "InvalidCommandOutput")
        #expect(failure?.message.contains("not one JSON value") == true)
        #expect(failure?.retryable == false)
    }

    @Test(arguments: ["true", "printf '\\n  \\t\\n'", "exec >&-; echo 'stdout closed' >&2"])
    func noOutputIsNull(_ command: String) async throws {
        #expect(try await run(command) == .null)
    }

    @Test func aCommandThatClosesStandardOutputEarlyStillFails() async throws {
        let failure = await #expect(throws: TaskFailure.self) { try await run("exec >&-; exit 2") }
        #expect(failure?.message == "exited with status 2")
    }

    @Test func aCommandThatIgnoresItsInputStillAnswers() async throws {
        // Far more than a pipe holds: the writes after the command exits fail with EPIPE, and
        // this process gets no SIGPIPE.
        let big = "\"" + String(repeating: "x", count: 4 << 20) + "\""
        #expect(try await run("echo 42", [big]).text == "42")
        #expect(try await run("exec <&-; echo 43", [big, big]).text == "43")
        // And one that reads it all still sees all of it.
        #expect(try await run("wc -c", [big]).text == "\(big.utf8.count + 3)")
    }

    @Test func outputOverTheLimitStopsTheCommand() async throws {
        let runner = CommandRunner(options: .init(outputLimit: 1000))
        // `yes` never ends by itself: the limit stops it.
        let failure = await #expect(throws: TaskFailure.self) { try await run("yes", runner: runner) }
        #expect(failure?.name == "CommandOutputTooLarge")
        #expect(failure?.retryable == false)
        let atTheLimit = try await run("head -c 1000 /dev/zero | tr '\\0' 7", runner: runner)
        #expect(atTheLimit.text == String(repeating: "7", count: 1000))
    }

    @Test func onlyTheTailOfAHugeStandardErrorIsKept() async throws {
        let failure = await #expect(throws: TaskFailure.self) {
            try await run("head -c 5000000 /dev/zero | tr '\\0' e >&2; printf '\\nthe end\\n' >&2; exit 1")
        }
        #expect(failure?.message == "the end")
        let long = await #expect(throws: TaskFailure.self) {
            try await run("head -c 100000 /dev/zero | tr '\\0' e >&2; exit 1")
        }
        // One line longer than the tail: its end, no more.
        #expect(long?.message == String(repeating: "e", count: CommandRunner.Options().stderrTailLimit))
    }

    @Test func cancellationKillsTheWholeProcessGroup() async throws {
        try await expectCancellationEndsTheGroup(prelude: "", runner: CommandRunner())
    }

    @Test func aGroupIgnoringSIGTERMIsKilledAfterTheGrace() async throws {
        // SIGTERM ignored by the shell and, inherited, by its grandchild.
        try await expectCancellationEndsTheGroup(
            prelude: "trap '' TERM; ",
            runner: CommandRunner(options: .init(terminationGrace: .milliseconds(100))))
    }

    /// Runs a shell that starts a grandchild, cancels the run once both are up, and expects the
    /// shell reaped when the run returns and the whole group gone soon after.
    private func expectCancellationEndsTheGroup(prelude: String, runner: CommandRunner) async throws {
        try await withTemporaryDirectory { directory in
            let pids = directory.appendingPathComponent("pids")
            // The shell and a grandchild; renamed into place, so both are there once it exists.
            let command =
                prelude + "sleep 1000 & echo $! > \(pids.path).new; echo $$ >> \(pids.path).new; "
                + "mv \(pids.path).new \(pids.path); wait"
            let running = Task { try await run(command, runner: runner) }
            try await waitUntil("the command to write its pids") {
                Processes.identifiers(in: pids).count == 2
            }
            let identifiers = Processes.identifiers(in: pids)
            running.cancel()
            await #expect(throws: CancellationError.self) { try await running.value }
            // The shell is reaped before the run returns; the grandchild goes with the group.
            #expect(Processes.isGone(identifiers[1]))
            try await waitUntil("the group to be gone") { identifiers.allSatisfy(Processes.isGone) }
        }
    }

    @Test func aDescendantHoldingStandardOutputDoesNotHoldTheResult() async throws {
        try await withTemporaryDirectory { directory in
            let pids = directory.appendingPathComponent("pids")
            let result = try await run("sleep 1000 & echo $! > \(pids.path); echo 1")
            #expect(result.text == "1")
            for pid in Processes.identifiers(in: pids) { kill(pid, SIGKILL) }
        }
    }

    @Test func closeStopsRunningCommandsAndRefusesNewOnes() async throws {
        try await withTemporaryDirectory { directory in
            let pids = directory.appendingPathComponent("pids")
            let runner = CommandRunner()
            let running = Task {
                try await run(
                    "echo $$ > \(pids.path).new; mv \(pids.path).new \(pids.path); exec sleep 1000",
                    runner: runner)
            }
            try await waitUntil("the command to write its pid") { Processes.identifiers(in: pids).count == 1 }
            await runner.close()
            // Reaped before close returns.
            #expect(Processes.isGone(Processes.identifiers(in: pids)[0]))
            let stopped = await #expect(throws: IvyError.self) { try await running.value }
            #expect(stopped?.code == .closed)
            let refused = await #expect(throws: IvyError.self) { try await run("echo 1", runner: runner) }
            #expect(refused?.code == .closed)
        }
    }

    @Test func aRunCancelledBeforeItStartsSpawnsNothing() async throws {
        try await withTemporaryDirectory { directory in
            let marker = directory.appendingPathComponent("ran")
            let runner = CommandRunner()
            let cancelled = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await run("touch \(marker.path)", runner: runner)
            }
            await #expect(throws: CancellationError.self) { try await cancelled.value }
            // The run is over and nothing was spawned (close would wait for it otherwise).
            await runner.close()
            #expect(!FileManager.default.fileExists(atPath: marker.path))
        }
    }
}
