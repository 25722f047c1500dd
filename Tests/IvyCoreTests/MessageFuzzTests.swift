// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyTestSupport
import Testing

@testable import IvyCore

/// Hostile bodies through the decoder and the argument decoding of registered tasks: each one
/// decodes or is refused with a typed error, and none traps (a trap ends the test process).
///
/// Serialized, and yielding every hundred bodies: a loop that holds a cooperative thread for
/// seconds starves every other test's tasks on a two-core machine.
@Suite(.serialized)
struct MessageFuzzTests {
    static let seeds: [UInt64] = [1, 0x1bad_5eed, 20_261_203]

    @Test(arguments: seeds)
    func everyBodyDecodesOrIsRefusedWithAReason(seed: UInt64) async throws {
        var decoded = 0
        try await forEachBody(seed: seed) { body, _ in
            let message: TaskMessage
            do { message = try MessageCodec(encryption: nil).decodeTask(body) } catch let error as IvyError {
                #expect(error.code == .malformedMessage || error.code == .decryptionFailed)
                #expect(!(error.detail ?? "").isEmpty, "a refusal says why")
                return
            }
            decoded += 1
            // What decodes survives a round trip through the encoder (times to the millisecond
            // the wire format keeps).
            var again = try TaskMessage(decoding: message.encoded())
            #expect(
                abs((again.createdAt ?? .distantPast).timeIntervalSince(message.createdAt ?? .distantPast))
                    < 0.001)
            #expect(
                abs((again.deadline ?? .distantPast).timeIntervalSince(message.deadline ?? .distantPast))
                    < 0.001)
            (again.createdAt, again.deadline) = (message.createdAt, message.deadline)
            #expect(again == message)
            #expect(message.attempt >= 1)
        }
        #expect(decoded > 500, "the fuzzer makes enough decodable messages to reach the tasks (seed \(seed))")
    }

    @Test(arguments: seeds)
    func argumentsThatDoNotFitAreRefusedBeforeTheTaskRuns(seed: UInt64) async throws {
        var ran = 0
        try await forEachBody(seed: seed) { body, registry in
            guard let message = try? TaskMessage(decoding: body),
                let task = registry.task(named: message.name)
            else {
                return
            }
            do {
                _ = try await task.run(message.args[...])
                ran += 1
            } catch let error as IvyError {
                #expect(error.code == .argumentsUndecodable)
                #expect(!(error.detail ?? "").isEmpty)
            } catch is TaskFailure {
                // The task's own refusal (an overflow in `fuzz.add`).
            }
        }
        #expect(ran > 0, "some fuzzed calls fit their task (seed \(seed))")
    }

    /// Hands `body` ten thousand bodies from the seeded fuzzer, aimed at the fuzz tasks of a
    /// fresh registry, yielding every hundred.
    private func forEachBody(
        seed: UInt64, _ body: ([UInt8], TaskRegistry) async throws -> Void
    ) async throws {
        let registry = TaskRegistry()
        try MessageFuzzer.registerTargets(in: registry)
        var fuzzer = MessageFuzzer(seed: seed, taskNames: registry.names)
        for index in 0..<10_000 {
            if index % 100 == 0 { await Task.yield() }
            try await body(fuzzer.next(), registry)
        }
    }

    @Test func aSaturatedAttemptIsPastEveryDeliveryLimit() {
        #expect(WorkerRuntime<MemoryQueueBackend>.attempt(Int.max, deliveryCount: 5) == Int.max)
        #expect(WorkerRuntime<MemoryQueueBackend>.attempt(Int.max - 1, deliveryCount: 2) == Int.max)
        #expect(WorkerRuntime<MemoryQueueBackend>.attempt(1, deliveryCount: Int.max) == Int.max)
        #expect(WorkerRuntime<MemoryQueueBackend>.attempt(3, deliveryCount: 2) == 4)
        #expect(
            WorkerRuntime<MemoryQueueBackend>.attempt(1, deliveryCount: 0) == 1, "a broker that counts from 0"
        )
        #expect(WorkerRuntime<MemoryQueueBackend>.attempt(Int.min, deliveryCount: Int.min) == 1)
    }

    @Test func theHeartbeatAllowanceCountsEveryBeatAndSaturates() {
        typealias Runtime = WorkerRuntime<MemoryQueueBackend>
        // 1 s of task, a beat every 0.5 s: 2 beats, the delivery and one beat while settling.
        #expect(
            Runtime.deliveryAllowance(
                extraDeliveries: 3, timeout: .seconds(1), visibility: .milliseconds(1500)) == 16)
        #expect(
            Runtime.deliveryAllowance(extraDeliveries: 0, timeout: .seconds(60), visibility: .seconds(30))
                == 8)
        #expect(
            Runtime.deliveryAllowance(
                extraDeliveries: 1_000_000, timeout: .seconds(Int64(1) << 60), visibility: .milliseconds(30))
                == Int.max)
    }
}
