// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyTestSupport
import Testing

@testable import IvyCore

@Suite("Notifier callback subscriptions")
struct NotifierSubscriptionTests {
    /// A notifier with only the stream API, as a third-party one may be: it gets the default
    /// callback subscription.
    private struct StreamOnlyNotifier: Notifier {
        let base = MemoryNotifier()
        var endpoint: String { base.endpoint }
        func publish(_ payload: [UInt8], to channel: ChannelName) async throws {
            try base.publish(payload, to: channel)
        }
        func subscribe(to channel: ChannelName) async throws -> AsyncStream<[UInt8]> {
            try base.subscribe(to: channel)
        }
        func close() async { base.close() }
    }

    @Test func theDefaultSubscriptionHandsOverEveryPayloadInOrder() async throws {
        let notifier = StreamOnlyNotifier()
        let received = Locked<[[UInt8]]>([])
        let subscription = try await notifier.subscribe(to: "results") { payload in
            received.withLock { $0.append(payload) }
        }
        for value in UInt8(0)..<50 { try await notifier.publish([value], to: "results") }
        try await withDeadline(.seconds(10), "fifty payloads") {
            while received.value.count < 50 { await Task.yield() }
        }
        #expect(received.value == (UInt8(0)..<50).map { [$0] })
        subscription.cancel()
        await notifier.close()
    }

    @Test func aCancelledMemorySubscriptionGetsNothingMore() throws {
        let notifier = MemoryNotifier()
        let received = Locked<[[UInt8]]>([])
        let subscription = try notifier.subscribe(to: "results") { payload in
            received.withLock { $0.append(payload) }
        }
        try notifier.publish([1], to: "results")
        subscription.cancel()
        try notifier.publish([2], to: "results")
        #expect(
            received.value == [[1]],
            "the memory notifier delivers while publishing, so nothing can be in flight")
        notifier.close()
    }

    @Test func droppingASubscriptionCancelsIt() throws {
        let notifier = MemoryNotifier()
        let received = Locked<Int>(0)
        do {
            _ = try notifier.subscribe(to: "results") { _ in received.withLock { $0 += 1 } }
        }
        try notifier.publish([1], to: "results")
        #expect(received.value == 0)
        notifier.close()
    }
}
