// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Testing

@testable import IvyAMQP

/// The confirm bookkeeping without a broker: acks singly and `multiple`, nacks, returns and
/// deadlines, in the orders RabbitMQ may send them.
@Suite("AMQP publisher confirms")
struct PublisherConfirmsTests {
    private let start = ContinuousClock.now

    private func key(_ id: String, _ queue: String = "jobs") -> PublisherConfirms<String>.ReturnKey {
        .init(exchange: "", routingKey: queue, messageID: id)
    }

    /// Publishes `ids` in order, the n-th with a deadline n seconds after `start`.
    private func published(_ ids: [String]) -> PublisherConfirms<String> {
        var confirms = PublisherConfirms<String>()
        for (index, id) in ids.enumerated() {
            confirms.published(key(id), deadline: start + .seconds(index + 1), token: id)
        }
        return confirms
    }

    @Test func sequenceNumbersStartAtOneAndAcksSettleOnlyWhatTheyName() {
        var confirms = PublisherConfirms<String>()
        #expect(confirms.published(key("a"), deadline: start, token: "a") == 1)
        #expect(confirms.published(key("b"), deadline: start, token: "b") == 2)
        #expect(confirms.published(key("c"), deadline: start, token: "c") == 3)
        #expect(confirms.settle(2, multiple: false) == ["b"])
        #expect(confirms.settle(2, multiple: false) == [])  // twice: nothing
        #expect(confirms.settle(9, multiple: false) == [])  // never used
        #expect(confirms.count == 2)
        #expect(confirms.settle(3, multiple: true) == ["a", "c"])
        #expect(confirms.isEmpty)
    }

    @Test func aMultipleAckSettlesEverythingUpToItsTagAndTagZeroEverything() {
        var confirms = published(["a", "b", "c", "d"])
        #expect(confirms.settle(3, multiple: false) == ["c"])
        #expect(confirms.settle(2, multiple: true) == ["a", "b"])
        #expect(confirms.settle(0, multiple: true) == ["d"])
        #expect(confirms.isEmpty)
    }

    @Test func aReturnSettlesTheOldestPublishWithItsKeyAndItsAckThenNothing() {
        var confirms = published(["a", "b", "a"])
        #expect(confirms.returned(key("a", "elsewhere")) == nil)
        #expect(confirms.returned(key("a")) == "a")
        // The ack for publish 1 follows its return: nothing left there; publish 3 still waits.
        #expect(confirms.settle(1, multiple: false) == [])
        #expect(confirms.count == 2)
        #expect(confirms.returned(key("a")) == "a")
        #expect(confirms.returned(key("a")) == nil)
        #expect(confirms.settle(3, multiple: true) == ["b"])
    }

    @Test func deadlinesExpireOldestFirstAndSkipSettledPublishes() {
        var confirms = published(["a", "b", "c"])
        #expect(confirms.nextDeadline() == start + .seconds(1))
        #expect(confirms.settle(1, multiple: false) == ["a"])
        #expect(confirms.nextDeadline() == start + .seconds(2))
        #expect(confirms.expired(at: start + .milliseconds(1500)) == [])
        #expect(confirms.expired(at: start + .seconds(3)) == ["b", "c"])
        #expect(confirms.nextDeadline() == nil)
        #expect(confirms.settle(3, multiple: true) == [])
    }

    @Test func removeAllReturnsWhatWaitsInPublishOrder() {
        var confirms = published(["a", "b", "c"])
        _ = confirms.settle(2, multiple: false)
        #expect(confirms.removeAll() == ["a", "c"])
        #expect(confirms.isEmpty)
        #expect(confirms.published(key("d"), deadline: start, token: "d") == 4)
    }
}
