// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Synchronization
import Testing

/// Hostile messages written straight to the queue, on every backend: each one runs or goes to
/// the dead letter with a reason, and the worker lives on (a trap would end the test process).
@Suite("Hostile messages")
struct WorkerFuzzTests {
    @Test(arguments: ConformanceBackend.all)
    func everyMessageRunsOrIsDeadLetteredWithAReason(_ kind: ConformanceBackend) async throws {
        let count = 1500
        try await Harness.run(kind, worker: WorkerOptions(concurrency: 16)) { h in
            let events = h.events(bufferingNewest: 4 * count)
            var fuzzer = MessageFuzzer(
                seed: 0xF022, taskNames: h.registry.names.filter { $0.hasPrefix("fuzz.") })
            // A broker that carries text (IronMQ) refuses bytes that are not UTF-8 when they are
            // sent, before anything could be lost: those bodies are left out there.
            let probe = freshQueue("probe")
            let carriesBytes = (try? await h.backend.send([0xFF, 0xFE], to: probe)) != nil
            if carriesBytes { _ = try await h.backend.purge(probe) }
            var bodies: [[UInt8]] = []
            while bodies.count < count {
                let body = fuzzer.next()
                // An empty body is no message.
                if !body.isEmpty && (carriesBytes || String(validating: body, as: UTF8.self) != nil) {
                    bodies.append(body)
                }
            }
            for start in stride(from: 0, to: count, by: 250) {
                _ = try await h.backend.send(
                    batch: Array(bodies[start..<min(count, start + 250)]), to: h.queue)
            }
            // Every message ends in exactly one of these.
            let outcomes = try await events.collect(
                count, within: .seconds(120), "an outcome for every message"
            ) {
                $0.isSucceeded || $0.isFailed || $0.isDeadLettered
            }
            let succeeded = outcomes.filter(\.isSucceeded).count
            let size = try await h.size()
            #expect(size == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: count - succeeded))
            // Inspection may page (IronMQ's peek shows 100 at a time).
            let letters = try await h.backend.deadLetters(of: h.queue, count: 100)
            #expect(letters.count == min(100, count - succeeded))
            #expect(letters.allSatisfy { !$0.reason.isEmpty }, "every dead letter says why")
            #expect(succeeded > 10, "some fuzzed calls fit their task")
            // The worker is still serving.
            #expect(try await h.client.call(h.tasks.add, 2, 3) == 5)
        } register: { registry, queue in
            try MessageFuzzer.registerTargets(in: registry, queue: queue)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aMessageAtTheLastAttemptAnIntHoldsIsDeadLetteredNotATrap(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let events = h.events()
            _ = try await h.sendRaw(
                #"{"name":"\#(h.tasks.add.name)","args":[1,2],"attempt":9223372036854775807}"#)
            let failed = try await events.collect(1, "the message's failure", where: \.isFailed)
            #expect(failed.first?.task?.attempt == Int.max)
            #expect(try await h.deadLetters().first?.reason.contains("AttemptsExhausted") == true)
            #expect(try await h.client.call(h.tasks.add, 2, 3) == 5, "the worker lives")
        }
    }
}
