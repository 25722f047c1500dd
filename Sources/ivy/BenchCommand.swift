// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyCore
import IvyExamples

/// `ivy bench`: round trips with results through real workers, measured.
enum BenchCommand {
    static let help = """
        usage: ivy bench [--queue URL] [--notify URL] [-n TASKS] [-c IN_FLIGHT] [--workers W] [--queues Q]
                         [--payload BYTES] [--latency-calls K] [--phases LIST] [--rate R]
                         [--timeout SECONDS] [--no-worker] [--json]

        Measures, with testpackage.echo and a payload of BYTES:
          enqueue     calls accepted by the queue per second (TASKS calls, IN_FLIGHT at once);
                      their results are then awaited, outside the timed part
          round trip  calls completed with their result per second (TASKS calls, IN_FLIGHT at once)
          latency     p50/p90/p99 of K sequential calls
        Workers run in this process (W of them, each with concurrency IN_FLIGHT) unless
        --no-worker is given. With --json, stdout is one JSON object and the table goes to stderr.
        Errors are counted once per call: send errors are calls the queue refused (never
        queued), result errors are queued calls whose result failed or never came. The exit
        status is 0 only if there were none.

        options:
        \(SharedOptions.help)
          -n TASKS           calls per phase (default 20000)
          -c IN_FLIGHT       calls in flight at once (default 64)
          --workers W        in-process workers (default 1)
          --queues Q         spread the calls over Q queues, testpackage-1 to testpackage-Q, which
                             every worker serves (default 1: testpackage); on a Redis Cluster,
                             queues are spread over its masters by their slots
          --payload BYTES    size of the echoed string (default 16)
          --latency-calls K  sequential calls for the latency percentiles (default 1000)
          --phases LIST      phases to run, comma-separated: enqueue, roundtrip, latency (default: all)
          --rate R           send at most R calls per second in the enqueue phase (default: no limit)
          --timeout SECONDS  how long each call's result is awaited (default 60)
          --no-worker        use workers started elsewhere (`ivy worker`)
          --json             print the summary as one JSON object on stdout (the table on stderr)

        \(ExitStatus.help)
        """

    /// The bench's phases, in the order they run.
    enum Phase: String, CaseIterable {
        case enqueue, roundtrip, latency
    }

    /// The summary; a phase that did not run has no figures (absent from the JSON).
    struct Report: Encodable {
        var backend: String
        var notifier: String
        var tasks: Int
        var concurrency: Int
        var workers: Int
        var payloadBytes: Int
        var phases: [String]
        var enqueuePerSecond: Double?
        var roundTripsPerSecond: Double?
        var p50Milliseconds: Double?
        var p90Milliseconds: Double?
        var p99Milliseconds: Double?
        /// Calls the queue refused: they were never queued.
        var sendErrors: Int
        /// Calls the queue accepted whose result failed or never came.
        var resultErrors: Int
        /// `sendErrors + resultErrors`.
        var errors: Int

        /// The JSON keys scripts read (README, BENCHMARKS.md).
        enum CodingKeys: String, CodingKey {
            case backend, notifier, tasks, concurrency, workers, phases, errors
            case payloadBytes = "payload_bytes"
            case enqueuePerSecond = "enqueue_per_s"
            case roundTripsPerSecond = "roundtrip_per_s"
            case p50Milliseconds = "p50_ms"
            case p90Milliseconds = "p90_ms"
            case p99Milliseconds = "p99_ms"
            case sendErrors = "send_errors"
            case resultErrors = "result_errors"
        }
    }

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let shared = try SharedOptions(&arguments)
        let tasks = try arguments.integer("-n", "--tasks", default: 20_000, range: 1...100_000_000)
        let inFlight = try arguments.integer("-c", "--in-flight", default: 64, range: 1...100_000)
        let workerCount = try arguments.integer("--workers", default: 1, range: 1...256)
        let queueCount = try arguments.integer("--queues", default: 1, range: 1...1024)
        let payloadSize = try arguments.integer("--payload", default: 16, range: 0...64 << 20)
        let latencyCalls = try arguments.integer("--latency-calls", default: 1000, range: 0...10_000_000)
        let phases = try phaseSet(arguments.names("--phases"))
        let rate = try arguments.integer("--rate", default: 0, range: 1...100_000_000)
        let timeout = try arguments.seconds(
            "--timeout", default: .seconds(60), range: .milliseconds(1)...(.seconds(86_400)))
        let noWorker = arguments.flag("--no-worker")
        let json = arguments.flag("--json")
        try arguments.finish()
        if noWorker && (shared.isInProcess || shared.notifiesInProcess) {
            throw CommandLineArguments.UsageError(
                description: "--no-worker needs a shared broker and notifier, not memory://")
        }

        let (registry, package) = try shared.registry()
        // testpackage.echo on each queue: the workers run it by name, wherever it comes from.
        let queues: [QueueName] =
            queueCount == 1
            ? [TestPackage.queue]
            : try (1...queueCount).map { index throws(IvyError) in
                try QueueName("\(TestPackage.queue.rawValue)-\(index)")
            }
        let echoes = try queues.map { queue throws(IvyError) in
            var options = package.echo.options
            options.queue = queue
            return try TaskDefinition<String, String>(name: package.echo.name, options: options)
        }
        let connection = try await shared.connect()
        var connections = [connection]
        let producer: IvyClient
        var ivyWorkers: [IvyWorker] = []
        do {
            producer = try await shared.makeClient(registry, on: connection, resultTimeout: timeout)
            // memory:// lives in one connection, which its workers share (a memory notifier
            // too, or results would not come back); brokers get one connection per worker, as
            // separate worker processes would have.
            for _ in 0..<(noWorker ? 0 : workerCount) {
                var workerConnection = connection
                if !shared.isInProcess && !shared.notifiesInProcess {
                    workerConnection = try await shared.connect()
                    connections.append(workerConnection)
                }
                ivyWorkers.append(
                    try shared.makeWorker(
                        registry, on: workerConnection,
                        options: WorkerOptions(queues: queues, concurrency: inFlight)))
            }
        } catch {
            for connection in connections { await connection.close() }
            throw error
        }
        let workers = ivyWorkers.map { worker in Task { try await worker.run() } }
        let payload = String(repeating: "x", count: payloadSize)
        let errors = ErrorCounts()

        // Warm up connections and code paths before measuring (an empty payload, which every
        // queue accepts, so that a payload the queue refuses shows as send errors).
        let warmUp = try await producer.delayedCall(echoes[0], "")
        let hint = UnansweredCallHint.watch(
            when: noWorker, command: "bench", queue: queues[0], on: connection, shared)
        // Cancelled once the warm-up is answered (or fails): a busy queue in the measured phases
        // is no sign of a missing worker.
        defer { hint?.cancel() }
        _ = try await warmUp.value
        hint?.cancel()

        // Phase 1: enqueue rate. Results are awaited afterwards, outside the timed part.
        let clock = ContinuousClock()
        var enqueuePerSecond: Double?
        if phases.contains(.enqueue) {
            let start = clock.now
            let pendings = await inLanes(tasks, lanes: inFlight, progress: "enqueue") { index in
                if rate > 0 {
                    // Paced: call `index` goes out no earlier than index / rate seconds in.
                    try? await Task.sleep(until: start + .seconds(Double(index) / Double(rate)), clock: clock)
                }
                do { return try await producer.delayedCall(echoes[index % echoes.count], payload) } catch {
                    errors.addSendError(error)
                    return nil
                }
            }
            enqueuePerSecond = rounded(Double(tasks) / (clock.now - start).inSeconds)
            // A refused send was counted above; only queued calls can have a result error.
            _ = await inLanes(pendings.count, lanes: inFlight, progress: "draining") { index in
                if let pending = pendings[index] {
                    do { _ = try await pending.value } catch { errors.addResultError(error) }
                }
                return Optional<Int>.none
            }
        }

        // Phase 2: round trips with IN_FLIGHT calls outstanding.
        var roundTripsPerSecond: Double?
        if phases.contains(.roundtrip) {
            let start = clock.now
            _ = await inLanes(tasks, lanes: inFlight, progress: "round trip") { index in
                do { _ = try await producer.call(echoes[index % echoes.count], payload) } catch {
                    errors.add(error)
                }
                return Optional<Int>.none
            }
            roundTripsPerSecond = rounded(Double(tasks) / (clock.now - start).inSeconds)
        }

        // Phase 3: latency of sequential calls.
        var latencies: [Double] = []
        if phases.contains(.latency) {
            latencies.reserveCapacity(latencyCalls)
            for index in 0..<latencyCalls {
                if index % 100 == 0 { Console.progress("latency \(index)/\(latencyCalls)") }
                let callStart = clock.now
                do { _ = try await producer.call(package.echo, payload) } catch { errors.add(error) }
                latencies.append((clock.now - callStart).inSeconds * 1000)
            }
            Console.endProgress()
            latencies.sort()
        }
        let measuredLatency = phases.contains(.latency) && !latencies.isEmpty

        for worker in workers { worker.cancel() }
        for worker in workers { _ = try? await worker.value }
        await producer.close()
        for connection in connections { await connection.close() }

        let report = Report(
            backend: shared.redactedQueue, notifier: shared.redactedNotify, tasks: tasks,
            concurrency: inFlight,
            workers: noWorker ? 0 : workerCount, payloadBytes: payloadSize,
            phases: Phase.allCases.filter(phases.contains).map(\.rawValue),
            enqueuePerSecond: enqueuePerSecond, roundTripsPerSecond: roundTripsPerSecond,
            p50Milliseconds: measuredLatency ? percentile(latencies, 0.50) : nil,
            p90Milliseconds: measuredLatency ? percentile(latencies, 0.90) : nil,
            p99Milliseconds: measuredLatency ? percentile(latencies, 0.99) : nil,
            sendErrors: errors.sendErrors, resultErrors: errors.resultErrors,
            errors: errors.sendErrors + errors.resultErrors)
        // With --json, stdout carries the JSON alone and the table goes to stderr.
        printTable(report, to: json ? Console.error : Console.out)
        let firstErrors = errors.firstErrors
        if let send = firstErrors.send { Console.error("ivy bench: the first send error: \(send)") }
        if let result = firstErrors.result { Console.error("ivy bench: the first result error: \(result)") }
        if json { try Console.json(report) }
        return report.errors == 0 ? ExitStatus.success.rawValue : ExitStatus.taskFailed.rawValue
    }

    /// The phases named by `--phases`; all of them when it is absent.
    private static func phaseSet(_ names: [String]?) throws(CommandLineArguments.UsageError) -> Set<Phase> {
        guard let names else { return Set(Phase.allCases) }
        var phases: Set<Phase> = []
        for name in names {
            guard let phase = Phase(rawValue: name.lowercased()) else {
                throw CommandLineArguments.UsageError(
                    description: "--phases takes a comma-separated list of enqueue, roundtrip, latency")
            }
            phases.insert(phase)
        }
        return phases
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

    private static func printTable(_ report: Report, to print: (String) -> Void) {
        func number(_ value: Double) -> String {
            let formatter = NumberFormatter()
            formatter.numberStyle = .decimal
            formatter.maximumFractionDigits = 0
            return formatter.string(from: NSNumber(value: value)) ?? "\(value)"
        }
        func pad(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(0, width - text.count)) + text
        }
        print(
            "ivy bench  queue \(report.backend)  notifier \(report.notifier)  tasks \(report.tasks)  in flight \(report.concurrency)  workers \(report.workers)  payload \(report.payloadBytes) B"
        )
        func milliseconds(_ value: Double?) -> String {
            value.map { pad(String(format: "%.3f", $0), 12) + " ms" } ?? pad("-", 12)
        }
        print(
            "  enqueue      \(report.enqueuePerSecond.map { pad(number($0), 12) + " tasks/s" } ?? pad("-", 12))"
        )
        print(
            "  round trip   \(report.roundTripsPerSecond.map { pad(number($0), 12) + " tasks/s" } ?? pad("-", 12))"
        )
        print("  latency p50  \(milliseconds(report.p50Milliseconds))")
        print("  latency p90  \(milliseconds(report.p90Milliseconds))")
        print("  latency p99  \(milliseconds(report.p99Milliseconds))")
        print(
            "  errors       \(pad(String(report.errors), 12))  (send \(report.sendErrors), result \(report.resultErrors))"
        )
    }

    private static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)
        return (sorted[max(0, index)] * 1000).rounded() / 1000
    }

    private static func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }
}
