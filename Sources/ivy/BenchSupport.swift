// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy
import Synchronization

/// A shared counter for bench lanes.
final class Counter: Sendable {
    private let storage = Atomic<Int>(0)
    func increment() -> Int { storage.add(1, ordering: .relaxed).newValue }
}

/// Counts failed calls across lanes, once each: refused sends apart from lost or failed results.
final class ErrorCounts: Sendable {
    private let sends = Atomic<Int>(0)
    private let results = Atomic<Int>(0)
    /// The first error of each kind, for the operator to see why.
    private let firsts = Mutex<(send: String?, result: String?)>((nil, nil))

    /// A call the queue refused: it was never queued.
    func addSendError(_ error: any Error) {
        sends.add(1, ordering: .relaxed)
        firsts.withLock { if $0.send == nil { $0.send = "\(error)" } }
    }
    /// A queued call whose result failed or never came.
    func addResultError(_ error: any Error) {
        results.add(1, ordering: .relaxed)
        firsts.withLock { if $0.result == nil { $0.result = "\(error)" } }
    }

    /// Counts a failed `call`, which reports a refused send and a failed result alike: errors
    /// about the result (the remote task's, none in time, one that could not be read) are
    /// result errors, everything else happened on the way to the queue.
    func add(_ error: any Error) {
        if Self.isAboutTheResult(error) { addResultError(error) } else { addSendError(error) }
    }

    /// The first send error and the first result error, each when there was one.
    var firstErrors: (send: String?, result: String?) { firsts.withLock { $0 } }

    var sendErrors: Int { sends.load(ordering: .relaxed) }
    var resultErrors: Int { results.load(ordering: .relaxed) }

    static func isAboutTheResult(_ error: any Error) -> Bool {
        switch error {
        case is RemoteTaskError: return true
        case let error as IvyError:
            return [.resultTimedOut, .resultUndecodable, .decryptionFailed, .encryptionRequired].contains(
                error.code)
        default: return false
        }
    }
}

/// Results of concurrent lanes, by index.
final class ResultsBox<T: Sendable>: Sendable {
    private let storage: Mutex<[T?]>
    init(count: Int) { storage = Mutex(Array(repeating: nil, count: count)) }
    func set(_ index: Int, _ value: T?) { storage.withLock { $0[index] = value } }
    var values: [T?] { storage.withLock { $0 } }
}
