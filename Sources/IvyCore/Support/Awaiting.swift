// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Awaits an operation that reports through a callback: the one bridge from the callback forms
/// (coalescers, Redis requests) to their suspending forms.
///
/// ```swift
/// let replies = try await awaiting { connection.send(commands, completion: $0) }
/// ```
package func awaiting<Value: Sendable>(
    _ start: (_ completion: @escaping @Sendable (Result<Value, any Error>) -> Void) -> Void
) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        start { continuation.resume(with: $0) }
    }
}
