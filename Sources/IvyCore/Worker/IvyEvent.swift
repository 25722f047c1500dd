// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Something that happened to a task call, on the client's or the worker's side.
///
/// Watch them with ``IvyClient/events(bufferingNewest:)`` and ``IvyWorker/events(bufferingNewest:)``;
/// the CLI's `demo` prints them as the call's flow. New kinds can be added without breaking a
/// `switch` over ``kind``, which needs a `default` case:
///
/// ```swift
/// for await event in worker.events() {
///     switch event.kind {
///     case .succeeded: metrics.record(event.duration!)
///     case .failed, .deadLettered: alert(event.error ?? "")
///     default: break
///     }
/// }
/// ```
public struct IvyEvent: Sendable, Hashable, CustomStringConvertible {
    /// What happened, as an open set.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        private let name: String

        /// The queue accepted a call (client), or a worker sent a periodic task's call as its
        /// leader.
        ///
        /// With ``IvyClient/call(_:_:timeout:after:at:)``, which does not wait for the queue's answer, this
        /// can come after ``callerResumed``: the answer and the result arrive on different
        /// connections. ``IvyClient/delayedCall(_:_:timeout:after:at:)`` emits it before it returns.
        public static var scheduled: Self { .init(name: "scheduled") }
        /// A worker started an attempt.
        public static var started: Self { .init(name: "started") }
        /// An attempt returned (``IvyEvent/duration``); its result is being acknowledged and
        /// published.
        public static var succeeded: Self { .init(name: "succeeded") }
        /// An attempt failed (``IvyEvent/error``) and the message was released for another one
        /// after ``IvyEvent/delay``.
        public static var retried: Self { .init(name: "retried") }
        /// The call failed for good (``IvyEvent/error``); the message went to the dead letter.
        public static var failed: Self { .init(name: "failed") }
        /// A message that could not be run went to the dead letter (bad JSON, an expired
        /// deadline, …), with ``IvyEvent/error`` as the reason.
        public static var deadLettered: Self { .init(name: "deadLettered") }
        /// The waiting caller got its outcome (client), once per call however many tasks await
        /// it; ``IvyEvent/succeeded`` says which.
        public static var callerResumed: Self { .init(name: "callerResumed") }

        public var description: String { name }
    }

    /// What happened.
    public var kind: Kind
    /// The call, where the message could be read (not for every ``Kind/deadLettered``).
    public var task: TaskEventContext?
    /// The queue involved, where one is known.
    public var queue: QueueName?
    /// The broker's message id, for ``Kind/deadLettered``.
    public var messageID: String?
    /// How long the attempt ran, for ``Kind/succeeded``.
    public var duration: Duration?
    /// The wait before the next attempt, for ``Kind/retried``.
    public var delay: Duration?
    /// The error or dead-letter reason, for ``Kind/retried``, ``Kind/failed`` and
    /// ``Kind/deadLettered``.
    public var error: String?
    /// For ``Kind/callerResumed``: whether the call succeeded.
    public var succeeded: Bool?

    public init(
        _ kind: Kind, task: TaskEventContext? = nil, queue: QueueName? = nil, messageID: String? = nil,
        duration: Duration? = nil, delay: Duration? = nil, error: String? = nil, succeeded: Bool? = nil
    ) {
        self.kind = kind
        self.task = task
        self.queue = queue ?? task?.queue
        self.messageID = messageID
        self.duration = duration
        self.delay = delay
        self.error = error
        self.succeeded = succeeded
    }

    /// One line: the kind, the task and what the kind carries.
    public var description: String {
        var text = "\(kind)"
        if let task { text += " \(task.taskName) id \(task.taskID) attempt \(task.attempt)" }
        if let queue { text += " queue \(queue)" }
        if let messageID { text += " message \(messageID)" }
        if let duration { text += " in \(duration)" }
        if let delay { text += " retry in \(delay)" }
        if let succeeded { text += succeeded ? " succeeded" : " failed" }
        if let error { text += ": \(error)" }
        return text
    }

    static func scheduled(_ task: TaskEventContext) -> Self { .init(.scheduled, task: task) }
    static func started(_ task: TaskEventContext) -> Self { .init(.started, task: task) }
    static func succeeded(_ task: TaskEventContext, duration: Duration) -> Self {
        .init(.succeeded, task: task, duration: duration)
    }
    static func retried(_ task: TaskEventContext, delay: Duration, error: String) -> Self {
        .init(.retried, task: task, delay: delay, error: error)
    }
    static func failed(_ task: TaskEventContext, error: String) -> Self {
        .init(.failed, task: task, error: error)
    }
    static func deadLettered(queue: QueueName, messageID: String, reason: String) -> Self {
        .init(.deadLettered, queue: queue, messageID: messageID, error: reason)
    }
    static func callerResumed(_ task: TaskEventContext, succeeded: Bool) -> Self {
        .init(.callerResumed, task: task, succeeded: succeeded)
    }
}
