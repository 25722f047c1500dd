// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyTestSupport
import Testing

@testable import IvyCore

/// The supervisor's heartbeats and the end of an attempt, with a backend whose extensions
/// hand out a new receipt and land only when the test says.
@Suite("Attempt supervisor")
struct AttemptSupervisorTests {
    /// Receipts are numbers; each extension waits for the gate, then returns the next number.
    final class RenewingBackend: QueueBackend {
        typealias Receipt = Int
        let gate = Gate()
        let extensionsStarted = Locked(0)
        var endpoint: String { "renewing://" }
        var maximumMessageSize: Int { 1 << 20 }

        func send(_ body: [UInt8], to queue: QueueName) async throws -> String { "id" }
        func reserve(from queue: QueueName, count: Int, visibility: Duration, wait: Duration) async throws
            -> [Reservation<Int>]
        { [] }
        func ack(_ reservation: Reservation<Int>) async throws {}
        func extend(_ reservation: Reservation<Int>, visibility: Duration) async throws -> Reservation<Int> {
            extensionsStarted.withLock { $0 += 1 }
            await gate.wait()
            var renewed = reservation
            renewed.receipt += 1
            return renewed
        }
        func release(_ reservation: Reservation<Int>, delay: Duration) async throws {}
        func deadLetter(_ reservation: Reservation<Int>, reason: String) async throws {}
        func close() async {}
    }

    @Test func anAttemptEndedDuringAHeartbeatGetsTheRenewedReservation() async throws {
        let backend = RenewingBackend()
        let supervisor = AttemptSupervisor(
            backend: backend, visibility: .milliseconds(60), logger: SilentLogger())
        let reservation = Reservation(
            queue: QueueName("q"), messageID: "m", body: [], deliveryCount: 1, receipt: 0)
        let id = try #require(supervisor.admit([reservation])?.first)
        let supervising = Task { await supervisor.supervise() }
        try await withDeadline(.seconds(20), "a heartbeat to start") {
            while backend.extensionsStarted.value == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        // The task ends while the extension is on its way: settling with receipt 0 would fail
        // on a broker that has renewed it by then.
        let ending = Task { await supervisor.end(id) }
        try await withDeadline(.seconds(20), "the end to wait for the heartbeat") {
            while supervisor.endsAwaitingRenewal == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        backend.gate.open()
        #expect(await ending.value?.receipt == 1)
        #expect(await supervisor.end(id) == nil, "ended once")
        supervising.cancel()
        await supervising.value
    }
}
