// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy

/// Tells the operator, once, when a call has had no answer for a few seconds and its queue
/// still holds messages no worker took: the usual cause is that no worker serves the queue, or
/// that the queue is paused.
///
/// Without it, `call --wait`, `demo --no-worker` and `bench --no-worker` wait silently until
/// their timeout.
struct UnansweredCallHint {
    /// How long a call goes unanswered before the queue is looked at.
    static let after: Duration = .seconds(3)

    let command: String
    let queue: QueueName
    let backend: any QueueBackend
    let endpoint: String

    /// Watches a call of `shared`'s queue when no worker of this process serves it (`when`);
    /// nil otherwise. Cancel what it returns when the answer comes.
    static func watch(
        when noWorker: Bool, command: String, queue: QueueName, on connection: IvyConnection,
        _ shared: SharedOptions
    ) -> Task<Void, Never>? {
        guard noWorker else { return nil }
        return UnansweredCallHint(
            command: command, queue: queue, backend: connection.backend, endpoint: shared.redactedQueue
        ).watch()
    }

    /// Watches until the returned task is cancelled: cancel it when the answer comes.
    ///
    /// - Parameter delay: How long the call waits before it may run (`ivy call --in`/`--at`):
    ///   the hint comes that much later.
    func watch(after delay: Duration = .zero) -> Task<Void, Never> {
        Task {
            do { try await Task.sleep(for: delay + Self.after) } catch { return }
            guard let message = await message() else { return }
            if !Task.isCancelled { Console.error("ivy \(command): \(message)") }
        }
    }

    /// The hint, or nil when the queue shows a worker has the message.
    private func message() async -> String? {
        if let pausable = backend as? any PausableQueueBackend, (try? await pausable.isPaused(queue)) == true
        {
            return
                "queue '\(queue)' is paused: no worker takes anything from it until `ivy queue resume \(queue)` (still waiting)"
        }
        let question = "is one serving queue '\(queue)' on \(endpoint)? (still waiting)"
        guard let inspectable = backend as? any InspectableQueueBackend else {
            return "no answer after \(Self.after): \(question)"
        }
        guard let size = try? await inspectable.size(of: queue) else {
            return "no answer after \(Self.after): \(question)"
        }
        if inspectable.distinguishesStates {
            // Everything reserved: a worker has it and is running it.
            guard size.ready + size.delayed > 0 else { return nil }
            return "no worker has taken it yet: \(question)"
        }
        guard size.ready > 0 else { return nil }
        return "no answer after \(Self.after) and \(size.ready) message(s) in the queue: \(question)"
    }
}
