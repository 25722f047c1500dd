// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// What one reserver of a worker knows of whether its queue is paused
/// (``PausableQueueBackend``): the broker's last answer, asked again no more than once per
/// interval, so that a busy reserver costs the broker one check a second, not one per reserve.
///
/// A value owned by the reserver's loop; nothing else reads it.
struct QueuePauseWatch {
    private let backend: any PausableQueueBackend
    private let queue: QueueName
    private let interval: Duration
    private let logger: any IvyLogger
    private let clock = ContinuousClock()
    /// The broker's last answer; not paused before the first.
    private var paused = false
    /// When that answer came; nil before the first check.
    private var answeredAt: ContinuousClock.Instant?
    /// Whether the last check failed, so that the first success after failures is logged.
    private var failing = false

    init(backend: any PausableQueueBackend, queue: QueueName, interval: Duration, logger: any IvyLogger) {
        self.backend = backend
        self.queue = queue
        self.interval = interval
        self.logger = logger
    }

    /// Returns true once the queue is not paused, by an answer at most one interval old. While
    /// it is paused, sleeps an interval between checks (no busy loop). Returns false as soon as
    /// the calling task is cancelled, so that a stopping worker does not wait out the interval.
    ///
    /// Also returns true when a check finds the backend closed: the reserve that follows then
    /// fails with ``IvyError/Code/closed`` too, and the worker stops as it does on any queue.
    /// Waiting on would keep a worker of a paused queue running for ever on a closed backend.
    mutating func waitUntilServing() async -> Bool {
        while !Task.isCancelled {
            if let answeredAt, clock.now < answeredAt.advanced(by: interval) {
                if !paused { return true }
                do { try await Task.sleep(until: answeredAt.advanced(by: interval), clock: clock) } catch {
                    return false
                }
                continue
            }
            if await check() == .backendClosed { return true }
        }
        return false
    }

    /// How a check ended: with the answer (or the last one standing, when it failed), or with
    /// the backend found closed.
    private enum CheckOutcome { case checked, backendClosed }

    private mutating func check() async -> CheckOutcome {
        let wasPaused = paused
        do {
            paused = try await backend.isPaused(queue)
            if failing {
                failing = false
                logger.info("checking whether the queue is paused works again", ["queue": queue.rawValue])
            }
        } catch {
            // A stopping worker's check may end in an error; it is not the broker's.
            if Task.isCancelled { return .checked }
            if (error as? IvyError)?.code == .closed { return .backendClosed }
            // The last answer stands (not paused before the first): a broker that fails one
            // check must neither undo an operator's pause nor stall a queue that is serving.
            // The reserve that follows meets the same broker and backs off on its own errors;
            // a failure that lasts is logged once per interval, so it is seen.
            failing = true
            logger.warning(
                "checking whether the queue is paused failed; going on as "
                    + (paused ? "paused" : "not paused"),
                ["queue": queue.rawValue, "error": "\(error)"])
        }
        // Timed from the answer, not the question: a slow broker is asked less often.
        answeredAt = clock.now
        if paused != wasPaused {
            logger.info(
                paused ? "queue paused; reserving nothing from it until it is resumed" : "queue resumed",
                ["queue": queue.rawValue])
        }
        return .checked
    }
}
