// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// The one error type of Ivy's own machinery: configuration, wire format, broker and timeouts.
///
/// Its text is built to be safe to print and to send to a remote caller: endpoints are redacted
/// when the error is made, and `detail` holds broker or C-library text, never message bodies
/// or credentials. Match on ``code``; new codes can be added without breaking callers.
public struct IvyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as a stable, open set of codes.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Kind: String, Sendable {
            case invalidTaskName, duplicateTask, unknownTask
            case malformedMessage, argumentsUndecodable, resultUndecodable, messageTooLarge
            case resultTimedOut, taskTimedOut, deadlineExpired, resultNotWanted
            case reservationLost, connectionFailed, commandFailed, invalidURL, unsupportedBackend
            case closed, invalidConfiguration, alreadyRunning
            case decryptionFailed, encryptionRequired
        }
        fileprivate let kind: Kind

        /// A task name is empty or not dotted (`package.module.function`).
        public static var invalidTaskName: Self { .init(kind: .invalidTaskName) }
        /// A task name was registered twice.
        public static var duplicateTask: Self { .init(kind: .duplicateTask) }
        /// A message names a task this registry does not have.
        public static var unknownTask: Self { .init(kind: .unknownTask) }
        /// A message body is not a valid task or notification message.
        public static var malformedMessage: Self { .init(kind: .malformedMessage) }
        /// A message's `args` do not decode as the task's parameter types.
        public static var argumentsUndecodable: Self { .init(kind: .argumentsUndecodable) }
        /// A notification's `result` does not decode as the task's result type.
        public static var resultUndecodable: Self { .init(kind: .resultUndecodable) }
        /// A message exceeds the backend's size limit.
        public static var messageTooLarge: Self { .init(kind: .messageTooLarge) }
        /// The caller stopped waiting for a result.
        public static var resultTimedOut: Self { .init(kind: .resultTimedOut) }
        /// A task ran past its timeout and was cancelled.
        public static var taskTimedOut: Self { .init(kind: .taskTimedOut) }
        /// A message reached a worker after its caller's deadline.
        public static var deadlineExpired: Self { .init(kind: .deadlineExpired) }
        /// A result was asked of a task registered with `resultWanted: false`.
        public static var resultNotWanted: Self { .init(kind: .resultNotWanted) }
        /// A reservation expired or was taken over before it was acknowledged.
        public static var reservationLost: Self { .init(kind: .reservationLost) }
        /// A broker could not be reached.
        public static var connectionFailed: Self { .init(kind: .connectionFailed) }
        /// A broker refused or failed a command.
        public static var commandFailed: Self { .init(kind: .commandFailed) }
        /// A backend URL cannot be parsed.
        public static var invalidURL: Self { .init(kind: .invalidURL) }
        /// A backend URL names a scheme this build does not support.
        public static var unsupportedBackend: Self { .init(kind: .unsupportedBackend) }
        /// The producer, worker or connection was closed.
        public static var closed: Self { .init(kind: .closed) }
        /// A worker's `run()` was called while it runs.
        public static var alreadyRunning: Self { .init(kind: .alreadyRunning) }
        /// Options that contradict each other or are out of range.
        public static var invalidConfiguration: Self { .init(kind: .invalidConfiguration) }
        /// An encrypted message is tampered, truncated, badly encoded, of an unknown format, or
        /// was encrypted with none of the configured keys.
        public static var decryptionFailed: Self { .init(kind: .decryptionFailed) }
        /// A plaintext message reached a worker that requires encryption.
        public static var encryptionRequired: Self { .init(kind: .encryptionRequired) }

        public var description: String { kind.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// The redacted endpoint involved, such as `redis://***@127.0.0.1:6390`.
    public var endpoint: String?
    /// The task involved, where there is one.
    public var taskName: String?
    /// The task message id involved, where there is one.
    public var taskID: String?
    /// Broker, C-library or decoder text. Never a message body, never a credential.
    public var detail: String?

    public init(
        _ code: Code, endpoint: String? = nil, taskName: String? = nil, taskID: String? = nil,
        detail: String? = nil
    ) {
        self.code = code
        self.endpoint = endpoint
        self.taskName = taskName
        self.taskID = taskID
        self.detail = detail
    }

    public var description: String {
        var text = "IvyError.\(code)"
        if let taskName { text += " task \(taskName)" }
        if let taskID { text += " id \(taskID)" }
        if let endpoint { text += " at \(endpoint)" }
        if let detail { text += ": \(detail)" }
        return text
    }
}

extension IvyError {
    /// A configuration value out of range, naming the field as the caller knows it
    /// (`WorkerOptions.concurrency`) and what it must be. Only the value's description is shown,
    /// so callers pass no secrets here.
    package static func invalidConfiguration(
        _ field: String, mustBe requirement: String, got value: some CustomStringConvertible
    ) -> IvyError {
        IvyError(.invalidConfiguration, detail: "\(field) must be \(requirement) (got \(value))")
    }

    /// Throws ``Code/invalidConfiguration`` unless `duration` lies in `range`.
    package static func check(_ field: String, _ duration: Duration, in range: ClosedRange<Duration>)
        throws(IvyError)
    {
        guard range.contains(duration) else {
            throw invalidConfiguration(
                field, mustBe: "from \(range.lowerBound) to \(range.upperBound)", got: duration)
        }
    }

    /// Throws ``Code/invalidConfiguration`` unless `value` lies in `range`.
    package static func check(_ field: String, _ value: Int, in range: ClosedRange<Int>) throws(IvyError) {
        guard range.contains(value) else {
            throw invalidConfiguration(
                field, mustBe: "from \(range.lowerBound) to \(range.upperBound)", got: value)
        }
    }
}
