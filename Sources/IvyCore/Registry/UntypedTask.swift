// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A handle on a task whose argument and result types the caller does not know: its arguments
/// are JSON values, and so is its result.
///
/// For tools and bridges that call tasks by name (`ivy call`), and for handlers registered with
/// ``TaskRegistry/registerUntyped(_:queue:retry:timeout:resultWanted:_:)``. On the wire a call
/// through it is the same message as a typed call with the same arguments.
public struct UntypedTask: Sendable {
    /// The dotted, unique task name (`package.module.function`).
    public let name: String
    /// Its queue, and, for a worker that registers it, its retries and timeout.
    public let options: TaskOptions

    /// Makes a handle without a registry, for a producer that only sends.
    ///
    /// - Throws: ``IvyError/Code/invalidTaskName`` for a name that is not dotted, or
    ///   ``IvyError/Code/invalidConfiguration`` for options out of range.
    public init(name: String, options: TaskOptions) throws(IvyError) {
        try TaskRegistry.validate(name: name)
        try options.validate()
        self.name = name
        self.options = options
    }
}
