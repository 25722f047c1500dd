// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples

/// `ivy bench`: round trips with results through real workers, measured.
enum BenchCommand {
    static let help = """
        usage: ivy bench [--queue URL] [--notify URL] [-n TASKS] [-c IN_FLIGHT] [--workers W]
                         [--payload BYTES] [--latency-calls K] [--no-worker] [--json]

        Measures, with testpackage.echo and a payload of BYTES:
          enqueue     calls accepted by the queue per second (TASKS calls, IN_FLIGHT at once)
          round trip  calls completed with their result per second (TASKS calls, IN_FLIGHT at once)
          latency     p50/p90/p99 of K sequential calls
        Workers run in this process (W of them, each with concurrency IN_FLIGHT) unless
        --no-worker is given. With --json the last line of stdout is one JSON object.

        options:
        \(SharedOptions.help)
          -n TASKS           calls per phase (default 20000)
          -c IN_FLIGHT       calls in flight at once (default 64)
          --workers W        in-process workers (default 1)
          --payload BYTES    size of the echoed string (default 16)
          --latency-calls K  sequential calls for the latency percentiles (default 1000)
          --no-worker        use workers started elsewhere (`ivy worker`)
          --json             end with a JSON summary line
        """

    struct Report: Encodable {
        var backend: String
        var notifier: String
        var tasks: Int
        var concurrency: Int
        var workers: Int
        var payload_bytes: Int
        var enqueue_per_s: Double
        var roundtrip_per_s: Double
        var p50_ms: Double
        var p90_ms: Double
        var p99_ms: Double
        var errors: Int
    }

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let tasks = try arguments.integer("-n", "--tasks", default: 20_000, range: 1...100_000_000)
        let inFlight = try arguments.integer("-c", "--in-flight", default: 64, range: 1...100_000)
        let workerCount = try arguments.integer("--workers", default: 1, range: 1...256)
        let payloadSize = try arguments.integer("--payload", default: 16, range: 0...64 << 20)
        let latencyCalls = try arguments.integer("--latency-calls", default: 1000, range: 0...10_000_000)
        let noWorker = arguments.flag("--no-worker")
        let json = arguments.flag("--json")
        try arguments.finish()
        if noWorker && shared.isInProcess {
            throw CommandLineArguments.UsageError(description: "--no-worker needs a shared broker, not memory://")
        }

        let (producer, package) = try await shared.makeIvy()
        // memory:// lives in one Ivy, so its workers share it; brokers get one Ivy per worker.
        var workerIvys: [Ivy] = []
        if !noWorker && !shared.isInProcess {
            for _ in 0..<workerCount { workerIvys.append(try await shared.makeIvy().0) }
        }
        let workers: [Task<Void, any Error>] =
            noWorker
            ? []
            : (0..<workerCount).map { index in
                let ivy = workerIvys.isEmpty ? producer : workerIvys[index]
                return Task { try await ivy.listen(queues: [TestPackage.queue], concurrency: inFlight) }
            }
        let payload = String(repeating: "x", count: payloadSize)
        let errors = ErrorCounter()

        // Warm up connections and code paths before measuring.
        _ = try await producer.call(package.echo, payload)

        // Phase 1: enqueue rate. Results are awaited afterwards, outside the timed part.
        let clock = ContinuousClock()
        var start = clock.now
        let pendings = await inLanes(tasks, lanes: inFlight, progress: "enqueue") { _ in
            do { return try await producer.delayedCall(package.echo, payload) } catch {
                errors.add()
                return nil
            }
        }
        let enqueueSeconds = seconds(clock.now - start)
        _ = await inLanes(pendings.count, lanes: inFlight, progress: "draining") { index in
            if (try? await pendings[index]?.value) == nil { errors.add() }
            return Optional<Int>.none
        }

        // Phase 2: round trips with IN_FLIGHT calls outstanding.
        start = clock.now
        _ = await inLanes(tasks, lanes: inFlight, progress: "round trip") { _ in
            do { _ = try await producer.call(package.echo, payload) } catch { errors.add() }
            return Optional<Int>.none
        }
        let roundTripSeconds = seconds(clock.now - start)

        // Phase 3: latency of sequential calls.
        var latencies: [Double] = []
        latencies.reserveCapacity(latencyCalls)
        for index in 0..<latencyCalls {
            if index % 100 == 0 { Console.progress("latency \(index)/\(latencyCalls)") }
            let callStart = clock.now
            do { _ = try await producer.call(package.echo, payload) } catch { errors.add() }
            latencies.append(seconds(clock.now - callStart) * 1000)
        }
        Console.endProgress()
        latencies.sort()

        for worker in workers { worker.cancel() }
        for worker in workers { _ = try? await worker.value }
        for ivy in workerIvys { await ivy.close() }
        await producer.close()

        let report = Report(
            backend: shared.redactedQueue, notifier: shared.redactedNotify, tasks: tasks, concurrency: inFlight,
            workers: noWorker ? 0 : workerCount, payload_bytes: payloadSize,
            enqueue_per_s: rounded(Double(tasks) / enqueueSeconds), roundtrip_per_s: rounded(Double(tasks) / roundTripSeconds),
            p50_ms: percentile(latencies, 0.50), p90_ms: percentile(latencies, 0.90), p99_ms: percentile(latencies, 0.99),
            errors: errors.value)
        printTable(report)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            Console.out(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
        return report.errors == 0 ? 0 : 1
    }

    /// Runs `count` operations over `lanes` concurrent lanes and collects their results in order.
    private static func inLanes<T: Sendable>(
        _ count: Int, lanes: Int, progress label: String, _ operation: @escaping @Sendable (Int) async -> T?
    ) async -> [T?] {
        let results = ResultsBox<T>(count: count)
        let next = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<min(lanes, count) {
                group.addTask {
                    while true {
                        let index = next.increment() - 1
                        guard index < count else { return }
                        if index % 1000 == 0 { Console.progress("\(label) \(index)/\(count)") }
                        results.set(index, await operation(index))
                    }
                }
            }
        }
        Console.endProgress()
        return results.values
    }

    private static func printTable(_ report: Report) {
        func number(_ value: Double) -> String {
            let formatter = NumberFormatter()
            formatter.numberStyle = .decimal
            formatter.maximumFractionDigits = 0
            return formatter.string(from: NSNumber(value: value)) ?? "\(value)"
        }
        func pad(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(0, width - text.count)) + text
        }
        Console.out(
            "ivy bench  queue \(report.backend)  notifier \(report.notifier)  tasks \(report.tasks)  in flight \(report.concurrency)  workers \(report.workers)  payload \(report.payload_bytes) B"
        )
        Console.out("  enqueue      \(pad(number(report.enqueue_per_s), 12)) tasks/s")
        Console.out("  round trip   \(pad(number(report.roundtrip_per_s), 12)) tasks/s")
        Console.out("  latency p50  \(pad(String(format: "%.3f", report.p50_ms), 12)) ms")
        Console.out("  latency p90  \(pad(String(format: "%.3f", report.p90_ms), 12)) ms")
        Console.out("  latency p99  \(pad(String(format: "%.3f", report.p99_ms), 12)) ms")
        Console.out("  errors       \(pad(String(report.errors), 12))")
    }

    private static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)
        return (sorted[max(0, index)] * 1000).rounded() / 1000
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private static func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }
}
