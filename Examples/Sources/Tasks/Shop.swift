// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Ivy

/// A registered-task plugin: the shop's tasks, which producer and worker both register.
public struct Shop: Sendable {
    /// The queue the shop's tasks travel on.
    public static let queue: QueueName = "shop"

    /// The price of `quantity` of `item`; an unknown item is a task error, not retried.
    public let price: TaskDefinition<String, Int, Double>
    /// Greets `name` after a pause, logging which attempt this is.
    public let slowHello: TaskDefinition<String, String>

    static let unitPrices = ["apple": 0.5, "pear": 0.75, "fig": 1.25]

    /// Registers the shop's tasks in `registry` and returns their handles.
    public static func register(in registry: TaskRegistry) throws -> Shop {
        try Shop(
            price: registry.register("shop.price", queue: queue) {
                (item: String, quantity: Int) async throws -> Double in
                guard let unit = unitPrices[item] else {
                    throw TaskFailure("UnknownItem", "no price for \(item)", retryable: false)
                }
                return unit * Double(quantity)
            },
            slowHello: registry.register(
                "shop.slowHello", queue: queue, retry: .fixed(.seconds(1), maxAttempts: 3),
                timeout: .seconds(10)
            ) { (name: String) async throws -> String in
                // Set by the worker for the run: ids, attempt, queue, and a logger carrying them.
                if let context = TaskContext.current {
                    context.logger.info("greeting \(name) on attempt \(context.attempt)")
                }
                try await Task.sleep(for: .milliseconds(200))
                return "Hello, \(name)!"
            })
    }
}
