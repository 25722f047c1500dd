// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import Testing

/// Announcements as they travel (PROTOCOL.md §12): anything that can write to the notifier's
/// store can write one, so what is read is checked, and what a worker writes is bounded.
@Suite("Workers' announcements")
struct WorkerPresenceTests {
    static func presence(started: Int = 3, histogram: MetricsHistogram? = nil) -> WorkerPresence {
        WorkerPresence(
            id: "w#00000001", name: "w", host: "h", pid: 7, queues: ["q"], backend: "memory://",
            concurrency: 2,
            running: 1, startedAt: Date(timeIntervalSince1970: 1_800_000_000),
            announcedAt: Date(timeIntervalSince1970: 1_800_000_002), version: "1",
            tallies: [
                .init(
                    task: "t", queue: "q", started: started, succeeded: 2, retried: 1, failed: 0,
                    deadLettered: 0,
                    runTime: histogram, resultLatency: histogram)
            ],
            recentFailures: [
                .init(
                    kind: "retried", at: Date(timeIntervalSince1970: 1_800_000_001), task: "t", taskID: "c",
                    queue: "q",
                    attempt: 1, error: "E")
            ])
    }

    @Test func anAnnouncementReadsBackAsWritten() throws {
        var histogram = MetricsHistogram(bounds: [0.1, 1])
        for value in [0.05, 0.5, 5] { histogram.observe(value) }
        let presence = Self.presence(histogram: histogram)
        let read = try WorkerPresence(decoding: try presence.encoded())
        #expect(read == presence)
        #expect(read.tallies.first?.runTime?.cumulativeCounts == [1, 2, 3])
    }

    @Test func numbersOutOfRangeAndBrokenHistogramsAreRefused() throws {
        #expect(throws: IvyError.self) {
            try WorkerPresence(decoding: try Self.presence(started: -1).encoded())
        }
        #expect(throws: IvyError.self) {
            try WorkerPresence(decoding: try Self.presence(started: Int.max).encoded())
        }
        let text = String(
            decoding: try Self.presence(histogram: MetricsHistogram(bounds: [1, 2])).encoded(), as: UTF8.self)
        for broken in [
            text.replacingOccurrences(of: #""bounds":[1,2]"#, with: #""bounds":[2,1]"#),
            text.replacingOccurrences(of: #""counts":[0,0,0]"#, with: #""counts":[0,0]"#),
            text.replacingOccurrences(of: #""counts":[0,0,0]"#, with: #""counts":[0,-1,0]"#),
        ] {
            #expect(broken != text)
            #expect(throws: IvyError.self) { try WorkerPresence(decoding: Array(broken.utf8)) }
        }
        #expect(throws: IvyError.self) { try WorkerPresence(decoding: Array("[]".utf8)) }
    }

    /// Names and errors come from messages: a failure keeps at most 1 KiB of error and 256
    /// bytes of task name and id, cut on a character boundary.
    @Test func failuresKeepBoundedTextFromMessages() throws {
        let log = FailureLog(capacity: 2)
        let long = TaskEventContext(
            taskName: String(repeating: "n", count: 10_000), taskID: String(repeating: "é", count: 1_000),
            queue: "q", attempt: 1)
        for index in 0..<3 {
            log.record(
                IvyEvent(.failed, task: long, error: "\(index)" + String(repeating: "x", count: 100_000)))
        }
        log.record(IvyEvent(.succeeded, task: long, duration: .seconds(1)))
        let kept = log.latest()
        #expect(kept.count == 2, "the capacity")
        #expect(kept.first?.error.hasPrefix("2") == true, "the newest first")
        for failure in kept {
            #expect(failure.error.utf8.count <= 1024 && failure.error.hasSuffix("…"))
            #expect(failure.task.utf8.count <= 256 && failure.taskID.utf8.count <= 256)
            #expect(failure.taskID.dropLast().allSatisfy { $0 == "é" }, "whole characters")
        }
    }

    /// A writer that keeps no periodic counts or histograms (another language's, following
    /// PROTOCOL.md §12) is read all the same.
    @Test func aTallyWithoutTheOptionalFieldsIsRead() throws {
        let text = #"""
            {"id":"x#00000001","name":"x","host":"h","pid":1,"queues":["q"],"backend":"b","concurrency":1,
             "running":0,"startedAt":0,"announcedAt":0,"version":"1","recentFailures":[],
             "tallies":[{"task":"t","queue":"q","started":1,"succeeded":1,"retried":0,"failed":0,"deadLettered":0}]}
            """#
        let tally = try #require(try WorkerPresence(decoding: Array(text.utf8)).tallies.first)
        #expect(tally.scheduled == 0 && tally.runTime == nil && tally.succeeded == 1)
    }
}
