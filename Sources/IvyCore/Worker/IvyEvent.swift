// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Something that happened to a task call, on the producer's or the worker's side.
///
/// Watch them with ``Ivy/events(bufferingNewest:)``; the CLI's `demo` prints them as the call's flow.
public enum IvyEvent: Sendable, Hashable {
    /// The queue accepted a call (producer).
    ///
    /// With ``Ivy/call(_:_:timeout:)``, which does not wait for the queue's answer, this can come
    /// after the worker's events, or even after ``callerResumed(_:succeeded:)``: the answer and
    /// the result arrive on different connections. ``Ivy/delayedCall(_:_:timeout:)`` emits it
    /// before it returns.
    case scheduled(TaskEventContext)
    /// A worker started an attempt.
    case started(TaskEventContext)
    /// An attempt returned; the result was acknowledged and published.
    case succeeded(TaskEventContext, duration: Duration)
    /// An attempt failed and the message was released for another one after `delay`.
    case retried(TaskEventContext, delay: Duration, error: String)
    /// The call failed for good; the message went to the dead letter.
    case failed(TaskEventContext, error: String)
    /// A message that could not be run went to the dead letter (bad JSON, unknown task, …).
    case deadLettered(queue: String, messageID: String, reason: String)
    /// The waiting caller got its outcome (producer).
    case callerResumed(TaskEventContext, succeeded: Bool)

    /// The call the event is about, where the message could be read.
    public var context: TaskEventContext? {
        switch self {
        case .scheduled(let context), .started(let context), .succeeded(let context, _),
            .retried(let context, _, _), .failed(let context, _), .callerResumed(let context, _):
            context
        case .deadLettered: nil
        }
    }
}

/// Which call an ``IvyEvent`` is about.
public struct TaskEventContext: Sendable, Hashable {
    public var taskName: String
    public var taskID: String
    public var queue: String
    public var attempt: Int

    public init(taskName: String, taskID: String, queue: String, attempt: Int) {
        self.taskName = taskName
        self.taskID = taskID
        self.queue = queue
        self.attempt = attempt
    }
}
