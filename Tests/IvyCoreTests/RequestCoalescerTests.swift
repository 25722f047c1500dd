// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyTestSupport
import Testing

@testable import IvyCore

@Suite("Request coalescer")
struct RequestCoalescerTests {
    private struct Refused: Error {}

    @Test func aLoneRequestRunsAtOnceByItself() async throws {
        let batches = Locked<[[Int]]>([])
        let coalescer = RequestCoalescer<Int, Int>(maximumBatch: 10) { requests, done in
            batches.withLock { $0.append(requests) }
            done(requests.map { .success($0 + 1) })
        }
        #expect(try await coalescer.submit(1) == 2)
        #expect(try await coalescer.submit(2) == 3)
        #expect(batches.value == [[1], [2]])
    }

    @Test func requestsArrivingDuringABatchGoTogetherInTheNextAndEachGetsItsOwnResult() async throws {
        let batches = Locked<[[Int]]>([])
        // The first batch is held open until the others have queued behind it.
        let heldOpen = Locked<(@Sendable () -> Void)?>(nil)
        let coalescer = RequestCoalescer<Int, Int>(maximumBatch: 4) { requests, done in
            batches.withLock { $0.append(requests) }
            let results: [Result<Int, any Error>] = requests.map {
                $0 == 7 ? .failure(Refused()) : .success($0 * 10)
            }
            if requests == [0] {
                heldOpen.withLock { $0 = { done(results) } }
            } else {
                done(results)
            }
        }
        let first = Task { try await coalescer.submit(0) }
        try await withDeadline(.seconds(10), "the first batch to start") {
            while heldOpen.value == nil { await Task.yield() }
        }
        let others = (1...9).map { value in Task { try await coalescer.submit(value) } }
        try await withDeadline(.seconds(10), "nine requests to queue") {
            while coalescer.queuedCount < 9 { await Task.yield() }
        }
        heldOpen.value?()
        #expect(try await first.value == 0)
        for (index, task) in others.enumerated() {
            let value = index + 1
            if value == 7 {
                await #expect(throws: Refused.self) { try await task.value }
            } else {
                #expect(try await task.value == value * 10)
            }
        }
        let sizes = batches.value.map(\.count)
        #expect(sizes == [1, 4, 4, 1], "nine queued requests in batches of at most four")
        #expect(Set(batches.value.dropFirst().joined()) == Set(1...9))
    }

    @Test func aCallbackCallerIsSettledWithoutAwaiting() async throws {
        let coalescer = RequestCoalescer<Int, Int>(maximumBatch: 4) { requests, done in
            done(requests.map { .success(-$0) })
        }
        let outcome = Locked<Int?>(nil)
        coalescer.submit(5) { result in outcome.withLock { $0 = try? result.get() } }
        #expect(outcome.value == -5, "a batch that finishes at once settles its caller before submit returns")
    }
}
