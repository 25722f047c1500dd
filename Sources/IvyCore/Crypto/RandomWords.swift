// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Unguessable 64-bit values from OpenSSL's generator, fetched `batch` at a time.
///
/// Every call names its task with one of these; asking the generator for 8 bytes at a time
/// cost about 2 % of a round trip's CPU (its locking and parameter handling, not the AES).
/// A process that forked would hand out its parent's remaining words: Swift programs don't.
final class RandomWords: Sendable {
    private struct Pool {
        var words: [UInt64] = []
        var next = 0
    }

    private let pool = Mutex(Pool())
    private let batch: Int

    init(batch: Int = 512) {
        precondition(batch > 0, "a pool must hold at least one word")
        self.batch = batch
    }

    func next() -> UInt64 {
        pool.withLock { pool in
            if pool.next == pool.words.count {
                pool.words = [UInt64](repeating: 0, count: batch)
                pool.words.withUnsafeMutableBytes(OpenSSL.fillRandom)
                pool.next = 0
            }
            defer { pool.next += 1 }
            return pool.words[pool.next]
        }
    }
}
