// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A registered task with its types erased: what a worker runs.
package struct RegisteredTask: Sendable {
    package let name: String
    package let options: TaskOptions
    /// Decodes the raw `args`, runs the body and returns the raw `result` array.
    ///
    /// Throws ``IvyError/Code/argumentsUndecodable`` before the body runs when the arguments
    /// do not fit; otherwise whatever the body throws.
    package let run: @Sendable (ArraySlice<UInt8>) async throws -> [UInt8]
}
