// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A typed handle on a registered task: what producers call.
///
/// Its generic parameters are the task's argument types and result type, so
/// `ivy.call(factorial, 5)` is checked by the compiler against the registration.
public struct TaskDefinition<each Argument: Codable & Sendable, Result: Codable & Sendable>: Sendable {
    /// The dotted, unique task name (`package.module.function`).
    public let name: String
    public let options: TaskOptions

    /// Makes a handle without a registry, for a producer that only sends.
    ///
    /// The worker that runs the task must register the same name with the same types.
    public init(name: String, options: TaskOptions) throws(IvyError) {
        try TaskRegistry.validate(name: name)
        self.name = name
        self.options = options
    }
}
