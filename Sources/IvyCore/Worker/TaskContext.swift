// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// What a running task knows about its run: read ``current`` inside a task body.
///
/// ```swift
/// try registry.register("reports.build", queue: "reports") { (month: String) async throws -> URL in
///     let context = TaskContext.current!
///     context.logger.info("building", ["month": month, "attempt": "\(context.attempt)"])
///     …
/// }
/// ```
///
/// The worker sets it for the task body and for every ``TaskMiddleware`` around it; outside a
/// run it is nil. Tests of a task body can set it with `TaskContext.$current.withValue(…)`.
public struct TaskContext: Sendable {
    /// The call's task id (the broker's message id for node ivy messages, which have none).
    public var taskID: String
    /// The registered task name.
    public var taskName: String
    /// This attempt's number, from 1.
    public var attempt: Int
    /// The queue the message came from.
    public var queue: QueueName
    /// The broker's id for the message.
    public var messageID: String
    /// When the caller stops waiting; nil for calls that nobody waits for.
    public var deadline: Date?
    /// The W3C trace context the caller sent, if any; also ``TraceContext/current`` during the
    /// run, so calls the task makes carry it on.
    public var trace: TraceContext?
    /// The worker's logger; ``logger`` adds this run's ids to it.
    public var baseLogger: any IvyLogger

    public init(
        taskID: String, taskName: String, attempt: Int, queue: QueueName, messageID: String,
        deadline: Date? = nil, trace: TraceContext? = nil, logger: any IvyLogger = StderrLogger()
    ) {
        self.taskID = taskID
        self.taskName = taskName
        self.attempt = attempt
        self.queue = queue
        self.messageID = messageID
        self.deadline = deadline
        self.trace = trace
        baseLogger = logger
    }

    /// A logger whose entries carry `task.id`, `task.name` and `attempt`.
    public var logger: any IvyLogger {
        MetadataLogger(
            base: baseLogger, metadata: ["task.id": taskID, "task.name": taskName, "attempt": "\(attempt)"])
    }

    /// The context of the task run the calling code is part of; nil outside one.
    @TaskLocal public static var current: TaskContext?
}

/// A logger that adds fixed metadata to every entry of another.
struct MetadataLogger: IvyLogger {
    let base: any IvyLogger
    let metadata: [String: String]

    var minimumLevel: LogLevel { base.minimumLevel }

    func log(_ level: LogLevel, _ message: String, metadata extra: [String: String]) {
        base.log(level, message, metadata: metadata.merging(extra) { _, new in new })
    }
}
