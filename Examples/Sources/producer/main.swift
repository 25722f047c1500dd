// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

// producer [QUEUE_URL [NOTIFY_URL]]: calls the shop's tasks through the queue, prints the results.

import Foundation
import Ivy
import Tasks

let environment = ProcessInfo.processInfo.environment
let arguments = Array(CommandLine.arguments.dropFirst())
let queue = arguments.first ?? environment["IVY_QUEUE_URL"] ?? "redis://127.0.0.1:6379"
let notifier = arguments.dropFirst().first ?? environment["IVY_NOTIFY_URL"] ?? queue

do {
    let registry = TaskRegistry()
    let shop = try Shop.register(in: registry)
    try await withIvyClient(registry: registry, queue: .url(queue), notifier: .url(notifier)) { client in
        let price = try await client.call(shop.price, "apple", 3, timeout: .seconds(30))
        print("shop.price(apple, 3) = \(price)")
        let pending = try await client.delayedCall(shop.slowHello, "Ada")  // queued; the result comes later
        print("shop.slowHello(Ada) = \(try await pending.value)")
        // What became of it, from the notifier's status store, by its id.
        print("status: \(try await client.status(of: pending.taskID).state.rawValue)")
    }
} catch {
    FileHandle.standardError.write(Data("producer: \(error)\n".utf8))
    exit(1)
}
