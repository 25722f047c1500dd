// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
internal import Synchronization

/// The tasks a producer may call and a worker may run.
///
/// Producer and worker must register the same tasks with the same types. The convention is a
/// *registered-task plugin*: a module exposes one function that registers its tasks into a
/// registry it is given, and both sides call it (see the `IvyExamples` module).
///
/// ```swift
/// let registry = TaskRegistry()
/// let add = try registry.register("testpackage.add", queue: "testpackage") { (a: Int, b: Int) in a + b }
/// ```
public final class TaskRegistry: Sendable {
    private let tasks = Mutex<[String: RegisteredTask]>([:])
    private let periodic = Mutex<[PeriodicTask]>([])

    public init() {}

    /// Registers a task and returns its typed handle.
    ///
    /// - Parameters:
    ///   - name: A dotted, unique name such as `package.module.function`: two or more segments of
    ///     letters, digits, `_` and `-`.
    ///   - queue: The queue its messages travel on.
    ///   - retry: Attempts and backoff after a retryable failure.
    ///   - timeout: How long one attempt may run before it is cancelled.
    ///   - resultWanted: Whether workers publish the outcome; when false, calls can only be
    ///     enqueued.
    ///   - body: The task. Its parameters and result travel as JSON through `Codable`.
    /// - Throws: ``IvyError/Code/invalidTaskName``, ``IvyError/Code/duplicateTask``, or
    ///   ``IvyError/Code/invalidConfiguration`` for options out of range (``TaskOptions/validate()``).
    @discardableResult
    public func register<each Argument: Codable & Sendable, Result: Codable & Sendable>(
        _ name: String, queue: QueueName, retry: RetryPolicy = .none, timeout: Duration = .seconds(60),
        resultWanted: Bool = true, _ body: @escaping @Sendable (repeat each Argument) async throws -> Result
    ) throws(IvyError) -> TaskDefinition<repeat each Argument, Result> {
        let options = TaskOptions(queue: queue, retry: retry, timeout: timeout, resultWanted: resultWanted)
        try options.validate()
        let definition = try TaskDefinition<repeat each Argument, Result>(name: name, options: options)
        let parameterCount = ArgumentDecoder.count(repeat (each Argument).self)
        let task = RegisteredTask(name: name, options: options) { json in
            // Every argument is decoded before the body starts, so a decoding failure is
            // told apart from the body's own errors.
            func decoded<Value: Decodable>(_ type: Value.Type, _ decoder: ArgumentDecoder) throws(IvyError)
                -> Value
            {
                do { return try decoder.next(type) } catch {
                    throw IvyError(.argumentsUndecodable, taskName: name, detail: Self.describe(error))
                }
            }
            let decoder: ArgumentDecoder
            do { decoder = try ArgumentDecoder(json, parameterCount: parameterCount) } catch {
                throw IvyError(.argumentsUndecodable, taskName: name, detail: Self.describe(error))
            }
            let result = try await body(repeat try decoded((each Argument).self, decoder))
            return try ResultCoding.encode(result)
        }
        try add(task)
        return definition
    }

    private func add(_ task: RegisteredTask) throws(IvyError) {
        try tasks.withLock { (tasks) throws(IvyError) in
            guard tasks[task.name] == nil else {
                throw IvyError(.duplicateTask, taskName: task.name, detail: "already registered")
            }
            tasks[task.name] = task
        }
    }

    /// Registers a task whose body takes the call's arguments as JSON values and returns its
    /// result as one: for handlers that do not know the types (another process, another
    /// language), such as `ivy worker --exec`.
    ///
    /// The parameters are those of ``register(_:queue:retry:timeout:resultWanted:_:)``; an `args`
    /// that is not a JSON array fails with ``IvyError/Code/argumentsUndecodable`` before the body
    /// runs.
    @discardableResult
    public func registerUntyped(
        _ name: String, queue: QueueName, retry: RetryPolicy = .none, timeout: Duration = .seconds(60),
        resultWanted: Bool = true, _ body: @escaping @Sendable ([RawJSON]) async throws -> RawJSON
    ) throws(IvyError) -> UntypedTask {
        let options = TaskOptions(queue: queue, retry: retry, timeout: timeout, resultWanted: resultWanted)
        try options.validate()
        let handle = try UntypedTask(name: name, options: options)
        try add(
            RegisteredTask(name: name, options: options) { json in
                let arguments: [RawJSON]
                do {
                    let bytes = Array(json)
                    arguments = try JSONObjectReader.arrayElements(bytes).map {
                        RawJSON(validated: bytes[$0])
                    }
                } catch {
                    throw IvyError(.argumentsUndecodable, taskName: name, detail: Self.describe(error))
                }
                return try ResultCoding.encode(try await body(arguments))
            })
        return handle
    }

    // MARK: Periodic tasks

    /// Calls `task` with `arguments` on a schedule: at every fire time of the cron expression
    /// `cron` (5 fields, or 6 with seconds first, or a macro such as `@hourly`), read on the
    /// wall clock of `timeZone`.
    ///
    /// Every worker made from this registry carries the schedule; for each periodic task one
    /// of them at a time (the leader, elected through the notifier's ``ScheduleStore``) sends
    /// its calls, and each fire time's call is sent once. The task need not be served by the
    /// workers that carry the schedule.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` for an expression that is not cron, and
    ///   the arguments' encoding error.
    @discardableResult
    public func schedule<each Argument, Result>(
        _ task: TaskDefinition<repeat each Argument, Result>, cron: String, timeZone: TimeZone = .gmt,
        _ arguments: repeat each Argument
    ) throws -> PeriodicTask {
        try add(
            PeriodicTask(
                taskName: task.name, queue: task.options.queue,
                arguments: try ArgumentEncoder.encode(repeat each arguments),
                schedule: try CronSchedule(cron, timeZone: timeZone)))
    }

    /// Calls `task` with JSON `arguments` on a schedule, as
    /// ``schedule(_:cron:timeZone:_:)`` does (`ivy worker --schedule`).
    @discardableResult
    public func schedule(
        _ task: UntypedTask, cron: String, timeZone: TimeZone = .gmt, arguments: [RawJSON]
    ) throws(IvyError) -> PeriodicTask {
        try add(
            PeriodicTask(
                taskName: task.name, queue: task.options.queue,
                arguments: ArgumentEncoder.encode(json: arguments),
                schedule: try CronSchedule(cron, timeZone: timeZone)))
    }

    /// The periodic tasks, in the order they were scheduled.
    public var schedules: [PeriodicTask] { periodic.withLock { $0 } }

    private func add(_ task: PeriodicTask) throws(IvyError) -> PeriodicTask {
        try periodic.withLock { (periodic) throws(IvyError) in
            guard !periodic.contains(where: { $0.id == task.id }) else {
                throw IvyError(
                    .duplicateTask, taskName: task.taskName,
                    detail: "already scheduled with \(task.schedule) and these arguments")
            }
            periodic.append(task)
        }
        return task
    }

    /// The names of every registered task, sorted.
    public var names: [String] { tasks.withLock { $0.keys.sorted() } }

    /// The queues the registered tasks travel on, sorted.
    public var queues: [QueueName] { tasks.withLock { Set($0.values.map(\.options.queue)).sorted() } }

    /// The queue task `name` travels on, if it is registered.
    public func queue(of name: String) -> QueueName? { task(named: name)?.options.queue }

    package func task(named name: String) -> RegisteredTask? {
        tasks.withLock { $0[name] }
    }

    /// Checks that a name is dotted (`package.function` or longer) and made of safe characters.
    static func validate(name: String) throws(IvyError) {
        let segments = name.split(separator: ".", omittingEmptySubsequences: false)
        guard !name.isEmpty else { throw IvyError(.invalidTaskName, detail: "a task name cannot be empty") }
        guard segments.count >= 2,
            segments.allSatisfy({ segment in
                !segment.isEmpty
                    && segment.unicodeScalars.allSatisfy {
                        $0.isASCII
                            && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_"
                                || $0 == "-")
                    }
            })
        else {
            throw IvyError(
                .invalidTaskName, taskName: name,
                detail: "expected dotted segments of letters, digits, '_' or '-', such as package.function")
        }
    }

    /// A decoding error as one line, without the values that failed to decode.
    static func describe(_ error: any Error) -> String {
        if let failure = error as? JSONObjectReader.Failure { return "invalid JSON: \(failure)" }
        guard let error = error as? DecodingError else { return "\(type(of: error))" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.isEmpty
                ? "" : " at " + context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context): return "expected \(type)\(path(context))"
        case .valueNotFound(let type, let context): return "missing \(type)\(path(context))"
        case .keyNotFound(let key, let context): return "missing key \(key.stringValue)\(path(context))"
        case .dataCorrupted(let context): return context.debugDescription + path(context)
        @unknown default: return "undecodable"
        }
    }
}
