// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// What `body` returns within `limit`; nil when it throws or is late, and then it is cancelled.
/// For reports (a scrape, a dashboard's sample), where a broker that does not answer should cost
/// that much, not a hang.
package func withTimeLimit<Value: Sendable>(
    _ limit: Duration, _ body: @escaping @Sendable () async throws -> Value
) async -> Value? {
    let answer = Promise<Value?>()
    let work = Task { answer.resolve(try? await body()) }
    let deadline = Task {
        try? await Task.sleep(for: limit)
        if answer.resolve(nil) { work.cancel() }
    }
    let value = (try? await answer.wait()) ?? nil
    deadline.cancel()
    return value
}
