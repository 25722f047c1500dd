// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// A call the queue has accepted, whose outcome is still to come.
///
/// Await ``value`` as often as you like, from any task: every awaiter gets the same outcome.
public struct PendingResult<Result: Codable & Sendable>: Sendable {
    /// The call's task id, as in the message and the notification.
    public let taskID: String
    public let taskName: String
    /// The queue the call travels on.
    public let queue: QueueName
    let slot: Promise<ResultRouter.Outcome>
    let events: EventBroadcaster
    /// When the call was sent, or is due: where its result latency starts.
    let dueAt: Date
    /// Set by the first awaiter's outcome: the caller is resumed once per call, however many
    /// tasks await ``value``.
    let resumed = OnceFlag()

    /// The task's result.
    ///
    /// - Throws: ``RemoteTaskError`` when the task failed for good on a worker;
    ///   ``IvyError/Code/resultTimedOut`` when no outcome came in time;
    ///   ``IvyError/Code/resultUndecodable`` when the result does not decode as `Result`.
    public var value: Result {
        get async throws {
            let notification: ResultNotification
            do { notification = try await slot.wait().get() } catch let error as IvyError {
                resume(context(attempt: 0), succeeded: false)
                throw error
            }
            let context = context(attempt: notification.attempt)
            switch notification.outcome {
            case .success(let json):
                do {
                    let value = try ResultCoding.decode(Result.self, from: json)
                    resume(context, succeeded: true)
                    return value
                } catch {
                    resume(context, succeeded: false)
                    throw IvyError(
                        .resultUndecodable, taskName: taskName, taskID: taskID,
                        detail: TaskRegistry.describe(error))
                }
            case .failure(let error):
                resume(context, succeeded: false)
                throw RemoteTaskError(
                    taskName: taskName, taskID: taskID, attempt: notification.attempt, name: error.name,
                    message: error.message, retryable: error.retryable)
            }
        }
    }

    /// Emits ``IvyEvent/Kind/callerResumed`` for the first awaiter alone.
    private func resume(_ context: TaskEventContext, succeeded: Bool) {
        if resumed.claim() { events.emit(.callerResumed(context, succeeded: succeeded)) }
    }

    private func context(attempt: Int) -> TaskEventContext {
        TaskEventContext(taskName: taskName, taskID: taskID, queue: queue, attempt: attempt, dueAt: dueAt)
    }
}
