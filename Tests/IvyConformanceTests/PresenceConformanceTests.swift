// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

/// Workers announcing themselves in the notifier's store (``WorkerPresenceStore``), as
/// `ivy dashboard` lists them, with each backend's notifier.
@Suite("Workers' presence")
struct PresenceConformanceTests {
    /// A running worker is listed with what it serves and what it did, failures included; once
    /// it has stopped, it is not.
    @Test(arguments: ConformanceBackend.all)
    func aRunningWorkerAnnouncesWhatItDidAndWithdrawsWhenItStops(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, worker: nil) { h in
            let store = try #require(h.notifier as? any WorkerPresenceStore)
            let name = "presence-\(h.queue)"
            let worker = try h.makeWorker(
                WorkerOptions(
                    concurrency: 3, pollWait: .seconds(1), name: name, presenceInterval: .milliseconds(50)))
            let serving = Task { try await worker.run() }
            #expect(try await h.client.call(h.tasks.factorial, 5) == 120)
            await #expect(throws: RemoteTaskError.self) {
                try await h.client.call(h.tasks.fail, "on purpose")
            }
            let presence = try await withDeadline(.seconds(30), "an announcement of the two calls") {
                while true {
                    if let mine = try await store.presentWorkers().first(where: { $0.name == name }),
                        mine.tallies.contains(where: { $0.task == "testpackage.fail" && $0.failed == 1 })
                    {
                        return mine
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(presence.queues == [h.queue.rawValue])
            #expect(presence.concurrency == 3)
            #expect(presence.backend == h.backend.endpoint)
            #expect(presence.pid == Int(ProcessInfo.processInfo.processIdentifier))
            #expect(presence.version == IvyVersion.current)
            #expect(presence.startedAt <= presence.announcedAt)
            let factorial = presence.tallies.first { $0.task == "testpackage.factorial" }
            #expect(factorial?.succeeded == 1)
            #expect(factorial?.queue == h.queue.rawValue)
            let failures = presence.recentFailures
            #expect(failures.map(\.kind) == ["failed", "retried", "retried"], "the newest first")
            #expect(failures.first?.error.contains("on purpose") == true)
            #expect(failures.first?.attempt == 3)

            serving.cancel()
            try await serving.value
            let after = try await store.presentWorkers()
            #expect(!after.contains { $0.id == presence.id }, "a worker that stopped withdraws")
            await worker.close()
        }
    }

    /// An announcement nobody renews lapses.
    @Test(arguments: ConformanceBackend.all)
    func anAnnouncementNotRenewedLapses(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, worker: nil) { h in
            let store = try #require(h.notifier as? any WorkerPresenceStore)
            // Whole milliseconds, as announcements keep times.
            let now = Date(timeIntervalSince1970: 1_800_000_000.123)
            let presence = WorkerPresence(
                id: "lapsing-\(h.queue)", name: "lapsing", host: "nowhere", pid: 1,
                queues: [h.queue.rawValue],
                backend: h.backend.endpoint, concurrency: 1, running: 0, startedAt: now, announcedAt: now,
                version: "0", tallies: [],
                recentFailures: [])
            try await store.announce(presence, for: .seconds(3_600))
            #expect(try await store.presentWorkers().contains(presence))
            try await store.announce(presence, for: .milliseconds(1))
            try await withDeadline(.seconds(30), "the announcement to lapse") {
                while try await store.presentWorkers().contains(where: { $0.id == presence.id }) {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        }
    }
}
