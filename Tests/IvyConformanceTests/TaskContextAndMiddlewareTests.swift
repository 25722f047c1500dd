// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

/// What a task can read about its run, and the middleware around it, on every backend.
@Suite("Task context and middleware")
struct TaskContextAndMiddlewareTests {
    private static let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// Registers `ctx.describe`, which answers with what its ``TaskContext`` says.
    private static func registerDescribe(_ registry: TaskRegistry, _ queue: QueueName) throws {
        try registry.register("ctx.describe", queue: queue) { () async throws -> [String] in
            guard let context = TaskContext.current else { throw TaskFailure("NoContext", "no context") }
            return [
                context.taskID, "\(context.attempt)", context.queue.rawValue, context.taskName,
                context.deadline == nil ? "no deadline" : "deadline",
                context.messageID.isEmpty ? "" : "message",
                context.trace?.traceparent ?? "no trace", context.trace?.tracestate ?? "no state",
                TraceContext.current == context.trace ? "trace is current" : "trace is not current",
            ]
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aTaskReadsItsIdAttemptQueueAndDeadline(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let task = try TaskDefinition<[String]>(
                name: "ctx.describe", options: TaskOptions(queue: h.queue))
            let pending = try await h.client.delayedCall(task)
            let seen = try await pending.value
            #expect(
                seen == [
                    pending.taskID, "1", h.queue.rawValue, "ctx.describe", "deadline", "message", "no trace",
                    "no state", "trace is current",
                ])
            #expect(TaskContext.current == nil, "no context outside a run")
        } register: { registry, queue in
            try Self.registerDescribe(registry, queue)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func theCallersTraceContextReachesTheTaskThroughTheMessageOptions(_ kind: ConformanceBackend) async throws
    {
        try await Harness.run(kind) { h in
            let task = try TaskDefinition<[String]>(
                name: "ctx.describe", options: TaskOptions(queue: h.queue))
            let trace = try #require(TraceContext(traceparent: Self.traceparent, tracestate: "vendor=1"))
            let seen = try await TraceContext.$current.withValue(trace) { try await h.client.call(task) }
            #expect(Array(seen[6...]) == [Self.traceparent, "vendor=1", "trace is current"])
            // On the wire it is plain `options`, which node ivy carries through untouched.
            let unserved = freshQueue("unserved")
            let parked = try TaskDefinition<[String]>(
                name: "ctx.describe", options: TaskOptions(queue: unserved))
            _ = try await TraceContext.$current.withValue(trace) { try await h.client.enqueue(parked) }
            let held = try #require(try await h.backend.peek(unserved, count: 1).first)
            let message = try TaskMessage(decoding: held.body)
            #expect(
                String(decoding: message.options, as: UTF8.self)
                    == #"{"traceparent":"\#(Self.traceparent)","tracestate":"vendor=1"}"#)
        } register: { registry, queue in
            try Self.registerDescribe(registry, queue)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func anInvalidTraceContextInOptionsIsIgnoredAndTheTaskRuns(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind) { h in
            let channel = try #require(h.client.options.notificationChannel)
            let results = try await h.notifier.subscribe(to: channel)
            for options in [
                #"{"traceparent":"00-zz-01"}"#, #"{"traceparent":5}"#,
                #"{"traceparent":"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
            ] {
                _ = try await h.sendRaw(#"{"name":"ctx.describe","options":"# + options + #","args":[]}"#)
                let notification = try await withDeadline(.seconds(20), "the node-style result") {
                    for await payload in results {
                        if let notification = try? ResultNotification(decoding: payload) {
                            return notification
                        }
                    }
                    throw DeadlineExceeded(limit: .seconds(20), what: "the stream ended")
                }
                guard case .success(let json) = notification.outcome else {
                    Issue.record("the task failed: \(notification.outcome)")
                    continue
                }
                #expect(String(decoding: json, as: UTF8.self).contains("no trace"))
            }
        } register: { registry, queue in
            try Self.registerDescribe(registry, queue)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func middlewareWrapsEveryRunFirstOutermost(_ kind: ConformanceBackend) async throws {
        let log = Locked<[String]>([])
        let middleware: [any TaskMiddleware] = [Recorder(name: "a", log: log), Recorder(name: "b", log: log)]
        try await Harness.run(kind, middleware: middleware) { (h: Harness) async throws in
            #expect(try await h.client.call(h.tasks.add, 1, 2) == 3)
            #expect(
                log.value == [
                    "a before testpackage.add 1", "b before testpackage.add 1", "b after", "a after",
                ])
            log.withLock { $0.removeAll() }
            await #expect(throws: RemoteTaskError.self) { try await h.client.call(h.tasks.fail, "no") }
            // Each middleware sees the task's error on every attempt (three: the task's retries).
            #expect(log.value.filter { $0 == "a saw TestFailure" }.count == 3)
            #expect(log.value.filter { $0 == "b saw TestFailure" }.count == 3)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aMiddlewareThatThrowsBeforeNextRefusesTheRun(_ kind: ConformanceBackend) async throws {
        let ran = Locked(0)
        try await Harness.run(kind, middleware: [Gatekeeper()]) { h in
            let counted = try TaskDefinition<Int, Int>(
                name: "ctx.counted", options: TaskOptions(queue: h.queue))
            let error = await #expect(throws: RemoteTaskError.self) { try await h.client.call(counted, 1) }
            #expect(error?.name == "Unauthorized")
            #expect(ran.value == 0, "the task body never ran")
            let letters = try await h.deadLetters()
            #expect(letters.first?.reason.hasPrefix("Unauthorized") == true)
        } register: { registry, queue in
            try registry.register("ctx.counted", queue: queue) { (n: Int) -> Int in
                ran.withLock { $0 += 1 }
                return n
            }
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aMiddlewareThatNeitherRunsNorThrowsFailsTheCall(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, middleware: [Skipper()]) { h in
            let error = await #expect(throws: RemoteTaskError.self) {
                try await h.client.call(h.tasks.add, 1, 2)
            }
            #expect(error?.name == "SkippedByMiddleware")
        }
    }
    @Test(arguments: ConformanceBackend.all)
    func nextRunsTheTaskOnceAndASecondCallFails(_ kind: ConformanceBackend) async throws {
        let ran = Locked(0)
        try await Harness.run(kind, middleware: [TwiceCaller()]) { h in
            let counted = try TaskDefinition<Int, Int>(name: "ctx.once", options: TaskOptions(queue: h.queue))
            let twice = await #expect(throws: RemoteTaskError.self) { try await h.client.call(counted, 1) }
            #expect(twice?.name == "MiddlewareError")
            #expect(ran.value == 1)
        } register: { registry, queue in
            try registry.register("ctx.once", queue: queue) { (n: Int) -> Int in
                ran.withLock { $0 += 1 }
                return n
            }
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aMiddlewareThatSwallowsTheTasksErrorKeepsTheFailure(_ kind: ConformanceBackend) async throws {
        try await Harness.run(kind, middleware: [Swallower()]) { (h: Harness) async throws in
            // There is no result to publish: the failure stands.
            let swallowed = await #expect(throws: RemoteTaskError.self) {
                try await h.client.call(h.tasks.fail, "x")
            }
            #expect(swallowed?.name == "TestFailure")
            #expect(try await h.client.call(h.tasks.add, 2, 2) == 4)
        }
    }
}

/// Logs what it sees around each run.
private struct Recorder: TaskMiddleware {
    let name: String
    let log: Locked<[String]>

    func intercept(_ context: TaskContext, next: () async throws -> Void) async throws {
        log.withLock { $0.append("\(name) before \(context.taskName) \(context.attempt)") }
        do {
            try await next()
            log.withLock { $0.append("\(name) after") }
        } catch {
            log.withLock { $0.append("\(name) saw \((error as? TaskFailure)?.name ?? "\(error)")") }
            throw error
        }
    }
}

/// Refuses every run.
private struct Gatekeeper: TaskMiddleware {
    func intercept(_ context: TaskContext, next: () async throws -> Void) async throws {
        throw TaskFailure("Unauthorized", "\(context.taskName) is not allowed here", retryable: false)
    }
}

/// Calls next() twice for `ctx.once`, once for the rest.
private struct TwiceCaller: TaskMiddleware {
    func intercept(_ context: TaskContext, next: () async throws -> Void) async throws {
        try await next()
        if context.taskName == "ctx.once" { try await next() }
    }
}

/// Swallows whatever the rest of the chain throws.
private struct Swallower: TaskMiddleware {
    func intercept(_ context: TaskContext, next: () async throws -> Void) async throws {
        try? await next()
    }
}

/// Returns without running the task.
private struct Skipper: TaskMiddleware {
    func intercept(_ context: TaskContext, next: () async throws -> Void) async throws {}
}
