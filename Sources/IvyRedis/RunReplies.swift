// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Gathers the replies of a request's runs, which finish on their nodes' threads in any order.
final class RunReplies: Sendable {
    private struct State {
        var results: [[RedisReply]?]
        var remaining: Int
    }

    private let state: Mutex<State>
    /// Called once, when every run has finished: each run's replies, or nil for a run to send again.
    private let onAll: @Sendable ([[RedisReply]?]) -> Void

    init(count: Int, onAll: @escaping @Sendable ([[RedisReply]?]) -> Void) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count))
        self.onAll = onAll
    }

    func finish(_ index: Int, with replies: [RedisReply]?) {
        let all = state.withLock { state -> [[RedisReply]?]? in
            state.results[index] = replies
            state.remaining -= 1
            return state.remaining == 0 ? state.results : nil
        }
        if let all { onAll(all) }
    }
}
