// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

// worker [QUEUE_URL [NOTIFY_URL]]: runs the shop's tasks until SIGTERM or Control-C, then drains.

import Foundation
import Ivy
import Tasks

let environment = ProcessInfo.processInfo.environment
let arguments = Array(CommandLine.arguments.dropFirst())
let queue = arguments.first ?? environment["IVY_QUEUE_URL"] ?? "redis://127.0.0.1:6379"
let notifier = arguments.dropFirst().first ?? environment["IVY_NOTIFY_URL"] ?? queue
// Status lines go to stderr, unbuffered, like the library's own; tasks log through it too.
let logger = StderrLogger(label: "worker", minimumLevel: .info)

do {
    let registry = TaskRegistry()
    let shop = try Shop.register(in: registry)
    // Every worker may carry the schedule; one of them (the leader) sends each hour's call.
    try registry.schedule(shop.price, cron: "@hourly", "apple", 12)
    let options = WorkerOptions(concurrency: 8, logger: logger, allowCancelRunning: true)
    try await withIvyWorker(registry: registry, queue: .url(queue), notifier: .url(notifier), options: options) {
        worker in
        let queues = worker.queues.map(\.rawValue).joined(separator: ",")
        logger.info("serving", ["queues": queues, "pid": "\(getpid())"])
        try await worker.run(untilSignal: [.terminate, .interrupt])  // returns after the drain
    }
    logger.info("stopped")
} catch {
    logger.error("\(error)")
    exit(1)
}
