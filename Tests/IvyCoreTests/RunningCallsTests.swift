// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Testing

@testable import IvyCore

/// Cancels of running calls reach them by id, including one heard before its call was expected
/// (its reserve recorded `running`, and the cancel came before the worker got to it).
@Suite("Running calls")
struct RunningCallsTests {
    @Test func aCancelHeardBeforeTheCallIsExpectedStopsItFromStarting() async {
        let calls = RunningCalls()
        #expect(!calls.cancel("a"), "nothing of a runs here yet")
        let ticket = calls.expect("a")
        #expect(ticket.wasCancelled, "the worker does not start it")
        // Were it run anyway, the cancel would reach it.
        let (result, cancelled) = await calls.run(ticket) {
            try await Task.sleep(for: .seconds(3600))  // ends only when cancelled
            return [1]
        }
        #expect(cancelled)
        #expect(throws: CancellationError.self) { try result.get() }
        // Kept once: the next attempt of the same call runs.
        let again = calls.expect("a")
        #expect(!again.wasCancelled)
        let (second, cancelledAgain) = await calls.run(again) { [2] }
        #expect(!cancelledAgain && (try? second.get()) == [2])
    }

    @Test func onlyTheLatestCancelsOfCallsNotHereAreKept() async {
        let calls = RunningCalls()
        calls.cancel("old")
        for number in 0..<RunningCalls.rememberedCancels { calls.cancel("other-\(number)") }
        #expect(!calls.expect("old").wasCancelled, "forgotten: the oldest went first")
        #expect(calls.expect("other-\(RunningCalls.rememberedCancels - 1)").wasCancelled)
    }
}
