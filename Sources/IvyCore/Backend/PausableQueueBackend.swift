// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend that can pause a queue for every worker at once (a capability, for operators).
///
/// The paused state lives on the broker, next to the queue (PROTOCOL.md §5 and each backend's
/// layout), so every worker process serving the queue sees it, whatever language it is written
/// in, and it survives the workers restarting. Pausing touches no message: while a queue is
/// paused, producers still send to it, nothing is deleted, and tasks already running finish
/// and are settled as usual; workers only stop reserving from it until it is resumed.
///
/// An ``IvyWorker`` over such a backend checks ``isPaused(_:)`` before it reserves, no more
/// than once per ``WorkerOptions/pauseCheckInterval`` for each queue, and while the queue is
/// paused it waits and checks again. A reserve already waiting when the pause is made still
/// takes what arrives before its ``WorkerOptions/pollWait`` runs out, so a pause takes effect
/// within one poll wait plus one check interval (6 s with the defaults).
///
/// Pausing a paused queue, or resuming one that is not paused, does nothing. The queue need
/// not exist: pausing one before anything was sent to it is how to hold back its first tasks.
public protocol PausableQueueBackend<Receipt>: QueueBackend {
    /// Pauses `queue`: from now on workers stop reserving from it until ``resume(_:)``.
    func pause(_ queue: QueueName) async throws

    /// Resumes a paused `queue`; workers take up its messages again at their next check.
    func resume(_ queue: QueueName) async throws

    /// Whether `queue` is paused, as the broker holds it now (one round trip).
    ///
    /// - Throws: ``IvyError/Code/closed`` once the backend is closed, as a reserve does: a
    ///   worker serving a paused queue, which reserves nothing, learns from it to stop.
    func isPaused(_ queue: QueueName) async throws -> Bool
}
