// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore

/// The example registered-task plugin: the tasks of ivy's `testpackage`, on queue `testpackage`.
///
/// Producer and worker both call ``register(in:queue:)`` so their registries match, as ivy requires.
public struct TestPackage: Sendable {
    /// The queue the package's tasks travel on unless another is given.
    public static let queue: QueueName = "testpackage"

    /// `n!`; negative `n` and results past `Int.max` (n > 20) are task errors, not retried.
    public let factorial: TaskDefinition<Int, Int>
    /// `a + b`; overflow is a task error.
    public let add: TaskDefinition<Int, Int, Int>
    /// Returns its argument.
    public let echo: TaskDefinition<String, String>
    /// Sleeps `ms` milliseconds (honouring cancellation) and returns `ms`.
    public let sleep: TaskDefinition<Int, Int>
    /// Always throws `TestFailure` with the given message: three attempts 50 ms apart, then the
    /// dead letter.
    public let fail: TaskDefinition<String, String>

    /// Registers the package's tasks.
    ///
    /// - Parameters:
    ///   - registry: Where to register them.
    ///   - queue: The queue they travel on; tests give each run its own.
    public static func register(in registry: TaskRegistry, queue: QueueName = TestPackage.queue)
        throws(IvyError)
        -> TestPackage
    {
        try TestPackage(
            factorial: registry.register(
                "testpackage.factorial", queue: queue, retry: .exponential(maxAttempts: 10)
            ) {
                (n: Int) async throws -> Int in
                try factorial(n)
            },
            add: registry.register("testpackage.add", queue: queue) { (a: Int, b: Int) async throws -> Int in
                let (sum, overflow) = a.addingReportingOverflow(b)
                guard !overflow else {
                    throw TaskFailure("OverflowError", "\(a) + \(b) overflows Int", retryable: false)
                }
                return sum
            },
            echo: registry.register("testpackage.echo", queue: queue) {
                (text: String) async throws -> String in text
            },
            sleep: registry.register("testpackage.sleep", queue: queue, timeout: .seconds(300)) {
                (milliseconds: Int) async throws -> Int in
                try await Task.sleep(for: .milliseconds(milliseconds))
                return milliseconds
            },
            fail: registry.register(
                "testpackage.fail", queue: queue, retry: .fixed(.milliseconds(50), maxAttempts: 3)
            ) { (message: String) async throws -> String in
                throw TaskFailure("TestFailure", message)
            })
    }

    static func factorial(_ n: Int) throws -> Int {
        guard n >= 0 else {
            throw TaskFailure("ValueError", "factorial(\(n)): n must not be negative", retryable: false)
        }
        var product = 1
        for factor in stride(from: 2, through: n, by: 1) {
            let (next, overflow) = product.multipliedReportingOverflow(by: factor)
            guard !overflow else {
                throw TaskFailure("OverflowError", "factorial(\(n)) overflows a 64-bit Int", retryable: false)
            }
            product = next
        }
        return product
    }
}
