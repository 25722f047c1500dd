// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// A subscription made with ``Notifier/subscribe(to:receive:)``; ``cancel()`` ends it, and so
/// does dropping the last reference to it.
public final class NotifierSubscription: Sendable {
    private let onCancel: Mutex<(@Sendable () -> Void)?>

    /// - Parameter onCancel: Unsubscribes; run once, by the first ``cancel()``.
    public init(onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = Mutex(onCancel)
    }

    /// Stops the deliveries; one already under way may still finish.
    public func cancel() {
        onCancel.withLock { action in
            defer { action = nil }
            return action
        }?()
    }

    deinit { cancel() }
}
