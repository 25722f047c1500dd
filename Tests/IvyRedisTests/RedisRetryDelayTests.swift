// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyRedis
import Testing

/// How long reconnects and retries wait: prompt at first, bounded later, never in step.
@Suite("Redis retry delays")
struct RedisRetryDelayTests {
    @Test func theFirstRetryComesWithinAbout50MillisecondsThenDoublesUpTo500() {
        let bases = (1...8).map { RedisConnection.retryDelayWithoutJitter(afterFailures: $0) }
        #expect(bases == [50, 100, 200, 400, 500, 500, 500, 500].map { Duration.milliseconds($0) })
        #expect(RedisConnection.retryDelayWithoutJitter(afterFailures: 0) == .milliseconds(50))
        #expect(RedisConnection.retryDelayWithoutJitter(afterFailures: .max) == .milliseconds(500))
    }

    @Test func eachDelayIsJitteredByHalfEitherWay() {
        for failures in [1, 3, 20] {
            let base = RedisConnection.retryDelayWithoutJitter(afterFailures: failures)
            let delays = (0..<200).map { _ in RedisConnection.retryDelay(afterFailures: failures) }
            #expect(delays.allSatisfy { $0 >= base / 2 && $0 <= base * 3 / 2 })
            #expect(Set(delays).count > 1, "jittered")
        }
        #expect(
            (0..<200).allSatisfy { _ in RedisConnection.retryDelay(afterFailures: 1) <= .milliseconds(75) })
    }
}
