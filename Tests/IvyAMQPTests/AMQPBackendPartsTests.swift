// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyCore
import IvyTestSupport
import Testing

@testable import IvyAMQP

/// The AMQP backend's parts that need no broker: the reconnect schedule, the delay ladder and
/// delivery counts, the inlet where deliveries wait, and the visibility holdings.
@Suite("AMQP backend parts")
struct AMQPBackendPartsTests {
    private static func delivery(
        tag: UInt64 = 1, generation: UInt64 = 1, redelivered: Bool = false,
        headers: [String: AMQPHeaderValue] = [:]
    ) -> AMQPDelivery {
        AMQPDelivery(
            consumerTag: "c", deliveryTag: tag, generation: generation, redelivered: redelivered, queue: "q",
            exchange: "", routingKey: "q", messageID: "m\(tag)", body: [UInt8(truncatingIfNeeded: tag)],
            headers: headers)
    }

    // MARK: Reconnect schedule

    @Test func reconnectsWaitTheMinimumThenTwiceAsLongAfterEachFailureUpToTheLongest() {
        var schedule = ReconnectSchedule(
            minimumInterval: .seconds(1), longestInterval: .seconds(8), jitter: 0.5)
        #expect(schedule.nextAttempt(random: 0.3) == nil, "the first attempt waits for nothing")
        let start = ContinuousClock.now
        schedule.attempted(at: start)
        #expect(schedule.nextAttempt(random: 0) == start + .seconds(1))
        #expect(schedule.nextAttempt(random: 1) == start + .milliseconds(1500))
        var waits: [Duration] = []
        for _ in 0..<6 {
            schedule.failed()
            waits.append(schedule.nextAttempt(random: 0)! - start)
        }
        #expect(waits == [.seconds(2), .seconds(4), .seconds(8), .seconds(8), .seconds(8), .seconds(8)])
        schedule.succeeded()
        #expect(schedule.nextAttempt(random: 0) == start + .seconds(1))
        // Out-of-range randomness is clamped, not trusted.
        #expect(schedule.nextAttempt(random: 7) == start + .milliseconds(1500))
    }

    // MARK: Topology

    @Test func delaysRoundUpToTheNextRungOfTheLadder() throws {
        #expect(AMQPTopology.rungs.count == 21)
        #expect(AMQPTopology.rungs.first == 100 && AMQPTopology.rungs.last == 500_000_000)
        #expect(AMQPTopology.rung(for: .zero) == 100)
        #expect(AMQPTopology.rung(for: .milliseconds(300)) == 500)
        #expect(AMQPTopology.rung(for: .seconds(1)) == 1000)
        #expect(AMQPTopology.rung(for: .milliseconds(1001)) == 2000)
        #expect(AMQPTopology.rung(for: .seconds(3600)) == 5_000_000)
        #expect(AMQPTopology.rung(for: .seconds(10_000_000)) == 500_000_000)
        let name = AMQPTopology.delay("jobs" as QueueName, rung: 2000)
        #expect(name == "jobs.delay.2000")
        let longest = try QueueName(String(repeating: "q", count: 200))
        #expect(AMQPTopology.delay(longest, rung: 500_000_000).utf8.count <= 255)
    }

    @Test func quorumDelayQueuesDeadLetterAtLeastOnce() {
        let quorum = AMQPTopology(queueType: .quorum).delayArguments(for: "jobs" as QueueName, rung: 500)
        #expect(quorum["x-message-ttl"] == .integer(500))
        #expect(quorum["x-dead-letter-routing-key"] == .string("jobs"))
        #expect(quorum["x-dead-letter-exchange"] == .string(""))
        #expect(quorum["x-dead-letter-strategy"] == .string("at-least-once"))
        #expect(quorum["x-queue-type"] == .string("quorum"))
        let classic = AMQPTopology(queueType: .classic).delayArguments(for: "jobs" as QueueName, rung: 500)
        #expect(classic["x-dead-letter-strategy"] == nil && classic["x-queue-type"] == .string("classic"))
    }

    @Test func deliveryCountsAddTheMovesToTheBrokersOwnCount() {
        let quorum = AMQPTopology(queueType: .quorum)
        let classic = AMQPTopology(queueType: .classic)
        #expect(quorum.deliveryCount(of: Self.delivery()) == 1)
        #expect(quorum.deliveryCount(of: Self.delivery(headers: ["x-delivery-count": 2])) == 3)
        #expect(
            quorum.deliveryCount(of: Self.delivery(headers: ["x-delivery-count": 2, "x-ivy-deliveries": 4]))
                == 7)
        #expect(classic.deliveryCount(of: Self.delivery(redelivered: true)) == 2)
        #expect(
            classic.deliveryCount(of: Self.delivery(redelivered: true, headers: ["x-ivy-deliveries": 4])) == 6
        )
        // A header another program wrote cannot make the count wrap or go below one.
        #expect(
            quorum.deliveryCount(of: Self.delivery(headers: ["x-ivy-deliveries": .integer(.max)])) == .max)
        #expect(
            quorum.deliveryCount(
                of: Self.delivery(headers: ["x-ivy-deliveries": -9, "x-delivery-count": -3])) == 1)
        #expect(classic.deliveryCount(of: Self.delivery(headers: ["x-ivy-deliveries": "three"])) == 1)
    }

    @Test func longReasonsAreCutAtACharacterWithinEightKilobytes() {
        #expect(AMQPTopology.clipped("short") == "short")
        let clipped = AMQPTopology.clipped(String(repeating: "€", count: 5000))  // 15,000 bytes
        #expect(clipped.utf8.count <= AMQPTopology.longestReason)
        #expect(clipped.hasSuffix("…") && clipped.dropLast().allSatisfy { $0 == "€" })
    }

    @Test func aMessageIdThatCannotBePublishedAgainIsReplaced() {
        #expect(AMQPBackend.messageID(of: Self.delivery(tag: 7)) == "m7")
        var empty = Self.delivery(tag: 7, generation: 3)
        empty.messageID = ""
        #expect(AMQPBackend.messageID(of: empty) == "amqp-3-7")
        var long = empty
        long.messageID = String(repeating: "\u{FFFD}", count: 86)  // 258 bytes
        #expect(AMQPBackend.messageID(of: long) == "amqp-3-7")
        var none = empty
        none.messageID = nil
        #expect(AMQPBackend.messageID(of: none) == "amqp-3-7")
    }

    // MARK: Link state

    /// A stand-in connection: alive until the test says otherwise.
    private final class FakeConnection {
        var isAlive = true
    }

    private typealias LinkState = AMQPLinkState<FakeConnection>

    private static func opening(_ outcome: LinkState.Outcome) -> (
        generation: UInt64, notBefore: ContinuousClock.Instant?
    )? {
        if case .wait(let open) = outcome.decision { return open }
        return nil
    }

    private static func used(_ outcome: LinkState.Outcome) -> FakeConnection? {
        if case .use(let connection) = outcome.decision { return connection }
        return nil
    }

    @Test func oneCallerOpensAndTheOthersWaitForTheSameAttempt() {
        var state = LinkState(recycleInterval: .zero)
        let now = ContinuousClock.now
        let first = state.request(now: now, isAlive: { $0.isAlive }, random: 0)
        #expect(Self.opening(first)?.generation == 1)
        #expect(Self.opening(first)?.notBefore == nil, "the first attempt waits for nothing")
        let second = state.request(now: now, isAlive: { $0.isAlive }, random: 0)
        guard case .wait(nil) = second.decision else {
            Issue.record("a second caller should wait without opening: \(second.decision)")
            return
        }
        state.attempting(at: now)
        let connection = FakeConnection()
        let kept = state.opened(connection, generation: 1, at: now)
        #expect(kept)
        #expect(Self.used(state.request(now: now, isAlive: { $0.isAlive }, random: 0)) === connection)
        #expect(state.usable(now: now, isAlive: { $0.isAlive }) === connection)
        connection.isAlive = false
        #expect(state.usable(now: now, isAlive: { $0.isAlive }) == nil)
        #expect(state.connection(generation: 1) === connection)
    }

    @Test func aDeadConnectionIsReportedLostOnceWhoeverNoticesFirst() {
        let now = ContinuousClock.now
        // The caller notices first; the connection's own report then says nothing new.
        var state = LinkState(recycleInterval: .zero)
        _ = state.request(now: now, isAlive: { $0.isAlive }, random: 0)
        let first = FakeConnection()
        _ = state.opened(first, generation: 1, at: now)
        first.isAlive = false
        let noticed = state.request(now: now, isAlive: { $0.isAlive }, random: 0)
        #expect(noticed.lost == 1)
        #expect(Self.opening(noticed)?.generation == 2)
        let reportedAgain = state.lost(generation: 1)
        #expect(!reportedAgain)
        // The connection reports first; the caller then finds nothing to report.
        var other = LinkState(recycleInterval: .zero)
        _ = other.request(now: now, isAlive: { $0.isAlive }, random: 0)
        _ = other.opened(FakeConnection(), generation: 1, at: now)
        let reported = other.lost(generation: 1)
        #expect(reported)
        #expect(other.request(now: now, isAlive: { $0.isAlive }, random: 0).lost == nil)
    }

    @Test func failedAttemptsWaitLongerAndASuccessResetsTheWait() {
        var state = LinkState(recycleInterval: .zero)
        let start = ContinuousClock.now
        _ = state.request(now: start, isAlive: { $0.isAlive }, random: 0)
        state.attempting(at: start)
        state.openFailed()
        #expect(
            Self.opening(state.request(now: start, isAlive: { $0.isAlive }, random: 0))?.notBefore == start
                + .seconds(2))
        state.attempting(at: start)
        state.openFailed()
        #expect(
            Self.opening(state.request(now: start, isAlive: { $0.isAlive }, random: 0))?.notBefore == start
                + .seconds(4))
        state.attempting(at: start)
        _ = state.opened(FakeConnection(), generation: 3, at: start)
        #expect(state.currentGeneration == 3)
    }

    @Test func anOldConnectionRetiresButStillSettlesItsDeliveries() {
        var state = LinkState(recycleInterval: .seconds(3600))
        let start = ContinuousClock.now
        _ = state.request(now: start, isAlive: { $0.isAlive }, random: 0)
        let old = FakeConnection()
        _ = state.opened(old, generation: 1, at: start)
        #expect(
            Self.used(state.request(now: start + .seconds(3599), isAlive: { $0.isAlive }, random: 0)) === old)
        let later = state.request(now: start + .seconds(3600), isAlive: { $0.isAlive }, random: 0)
        #expect(later.retired?.generation == 1 && later.retired?.connection === old)
        #expect(Self.opening(later)?.generation == 2)
        #expect(state.connection(generation: 1) === old, "a retiring connection still settles")
        state.closedRetired(generation: 1)
        #expect(state.connection(generation: 1) == nil)
    }

    @Test func aConnectionTheBrokerRefusesIsReplacedButStillSettles() {
        var state = LinkState(recycleInterval: .zero)
        let now = ContinuousClock.now
        _ = state.request(now: now, isAlive: { $0.isAlive }, random: 0)
        let refused = FakeConnection()
        _ = state.opened(refused, generation: 1, at: now)
        #expect(state.replace(generation: 2) == nil, "only the current one is replaced")
        #expect(state.replace(generation: 1) === refused)
        #expect(Self.opening(state.request(now: now, isAlive: { $0.isAlive }, random: 0))?.generation == 2)
        #expect(state.connection(generation: 1) === refused)
    }

    @Test func aClosedLinkRefusesAndClosesWhatOpensLate() {
        var state = LinkState(recycleInterval: .zero)
        let now = ContinuousClock.now
        _ = state.request(now: now, isAlive: { $0.isAlive }, random: 0)
        let left = state.close()
        #expect(left.isEmpty)
        let kept = state.opened(FakeConnection(), generation: 1, at: now)
        #expect(!kept, "the caller closes it")
        guard case .closed = state.request(now: now, isAlive: { $0.isAlive }, random: 0).decision else {
            Issue.record("a closed link handed out a connection")
            return
        }
    }

    // MARK: Inlet

    @Test func aWaiterGetsEverythingThatArrivedInOneBurst() async throws {
        let inlet = AMQPInlet(queue: "q" as QueueName)
        let waiting = Task { await inlet.wait(10, for: .seconds(60)) }
        // Only once the waiter is registered may the burst come.
        try await withDeadline(.seconds(10), "the waiter to register") {
            while !inlet.hasWaiters { await Task.yield() }
        }
        for tag in 1...3 { inlet.deliver(Self.delivery(tag: UInt64(tag))) }
        inlet.burstEnded()
        #expect(await waiting.value.map(\.deliveryTag) == [1, 2, 3])
        #expect(inlet.bufferedCount == 0)
    }

    @Test func aWaiterTakesNoMoreThanItAskedAndTheRestWaitsInOrder() {
        let inlet = AMQPInlet(queue: "q" as QueueName)
        for tag in 1...5 { inlet.deliver(Self.delivery(tag: UInt64(tag))) }
        inlet.burstEnded()
        #expect(inlet.take(2).map(\.deliveryTag) == [1, 2])
        #expect(inlet.bufferedCount == 3)
        #expect(inlet.take(10).map(\.deliveryTag) == [3, 4, 5])
    }

    @Test func aCancelledWaitReturnsEmptyEvenIfCancelledBeforeItRegistered() async {
        let inlet = AMQPInlet(queue: "q" as QueueName)
        let waiting = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await inlet.wait(1, for: .seconds(3600))
        }
        #expect(await waiting.value.isEmpty)
        #expect(!inlet.hasWaiters)
    }

    @Test func aChangedConnectionWakesTheWaitersAndDropsWhatCannotBeSettled() async throws {
        let inlet = AMQPInlet(queue: "q" as QueueName)
        inlet.deliver(Self.delivery(tag: 1, generation: 1))
        inlet.deliver(Self.delivery(tag: 2, generation: 2))
        inlet.connectionChanged { $0 == 2 }
        #expect(inlet.take(10).map(\.deliveryTag) == [2])
        let waiting = Task { await inlet.wait(1, for: .seconds(3600)) }
        try await withDeadline(.seconds(10), "the waiter to register") {
            while !inlet.hasWaiters { await Task.yield() }
        }
        inlet.connectionChanged { _ in true }
        #expect(await waiting.value.isEmpty)
    }

    @Test func onlyOneReserveStartsAConsumerAndALargerCountStartsAnother() throws {
        let inlet = AMQPInlet(queue: "q" as QueueName)
        #expect(inlet.claimStart(generation: 1, count: 4))
        #expect(!inlet.claimStart(generation: 1, count: 4), "another is starting one")
        #expect(inlet.started(.init(tag: "a", generation: 1, prefetch: 4)) == nil)
        #expect(!inlet.claimStart(generation: 1, count: 3))
        #expect(inlet.claimStart(generation: 1, count: 8))
        #expect(inlet.started(.init(tag: "b", generation: 1, prefetch: 8))?.tag == "a")
        #expect(inlet.claimStart(generation: 2, count: 1), "a new connection needs its own")
    }

    // MARK: Holdings

    @Test func anExpiredHoldingIsHandedBackOnceAndCanNoLongerBeTaken() async throws {
        let (expired, report) = AsyncStream<[String]>.makeStream()
        let holdings = AMQPHoldings { report.yield($0.map(\.messageID)) }
        let queue = "q" as QueueName
        let soon = holdings.hold(
            .init(
                delivery: Self.delivery(tag: 1), queue: queue, messageID: "soon", deliveryCount: 1,
                deadline: .now))
        let later = holdings.hold(
            .init(
                delivery: Self.delivery(tag: 2), queue: queue, messageID: "later", deliveryCount: 1,
                deadline: .now + .seconds(3600)))
        let first = try await withDeadline(.seconds(10), "the expiry") {
            for await ids in expired { return ids }
            return []
        }
        #expect(first == ["soon"])
        #expect(holdings.take(soon) == nil)
        #expect(holdings.count(of: queue) == 1)
        #expect(holdings.extend(later, to: .now + .seconds(7200), if: { _ in true }))
        #expect(!holdings.extend(later, to: .now, if: { _ in false }), "a delivery that cannot be settled")
        #expect(holdings.take(later)?.messageID == "later")
        holdings.close()
    }

    @Test func holdingsOfALostConnectionAreForgotten() throws {
        let holdings = AMQPHoldings { _ in }
        let queue = "q" as QueueName
        let old = holdings.hold(
            .init(
                delivery: Self.delivery(generation: 1), queue: queue, messageID: "a", deliveryCount: 1,
                deadline: .now + .seconds(60)))
        let new = holdings.hold(
            .init(
                delivery: Self.delivery(generation: 2), queue: queue, messageID: "b", deliveryCount: 1,
                deadline: .now + .seconds(60)))
        holdings.forget { $0.generation == 1 }
        #expect(holdings.take(old) == nil)
        #expect(holdings.take(new)?.messageID == "b")
        holdings.close()
    }
}
