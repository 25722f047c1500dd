// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyCore
import Testing

/// Attempts and waits between them; jitter draws from a seeded generator so runs repeat.
struct RetryPolicyTests {
    /// SplitMix64 (Steele, Lea and Flood 2014): a tiny, well-mixed, seedable generator.
    struct SplitMix64: RandomNumberGenerator {
        private var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The delays after attempts 1, 2, … up to one past `maxAttempts`.
    private func delays(_ policy: RetryPolicy) -> [Duration?] {
        var generator = SplitMix64(seed: 1)
        return (1...policy.maxAttempts + 1).map { policy.delay(afterAttempt: $0, using: &generator) }
    }

    @Test func splitMix64MatchesTheReferenceSequence() {
        // First outputs for seed 0 of the reference C implementation.
        var generator = SplitMix64(seed: 0)
        #expect(generator.next() == 0xE220_A839_7B1D_CDAF)
        #expect(generator.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(generator.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func noneNeverRetries() {
        let policy = RetryPolicy.none
        #expect(policy.maxAttempts == 1)
        #expect(policy.delay(afterAttempt: 1) == nil)
        #expect(policy.delay(afterAttempt: 2) == nil)
    }

    @Test func fixedWaitsTheSameEachTime() {
        let policy = RetryPolicy.fixed(.seconds(2), maxAttempts: 4)
        #expect(delays(policy) == [.seconds(2), .seconds(2), .seconds(2), nil, nil])
        #expect(RetryPolicy.fixed() == RetryPolicy(maxAttempts: 3, backoff: .fixed(.seconds(1))))
    }

    @Test func linearGrowsByOneStep() {
        let policy = RetryPolicy.linear(.milliseconds(150), maxAttempts: 5)
        #expect(
            delays(policy) == [
                .milliseconds(150), .milliseconds(300), .milliseconds(450), .milliseconds(600), nil, nil,
            ])
    }

    @Test func exponentialDoublesUpToTheMaximum() {
        let policy = RetryPolicy.exponential(
            base: .milliseconds(500), maximum: .seconds(3), maxAttempts: 8, jitter: false)
        #expect(
            delays(policy) == [
                .milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3), .seconds(3),
                .seconds(3), nil, nil,
            ])
    }

    @Test func exponentialDefaults() {
        let policy = RetryPolicy.exponential()
        #expect(policy.maxAttempts == 10)
        #expect(policy.jitter)
        #expect(policy.backoff == .exponential(base: .milliseconds(500), maximum: .seconds(300)))
        let exact = RetryPolicy(maxAttempts: 12, backoff: policy.backoff)
        #expect(exact.delay(afterAttempt: 1) == .milliseconds(500))
        #expect(exact.delay(afterAttempt: 9) == .seconds(128))
        #expect(exact.delay(afterAttempt: 10) == .seconds(256))
        #expect(exact.delay(afterAttempt: 11) == .seconds(300))
        #expect(exact.delay(afterAttempt: 12) == nil)
    }

    @Test func exponentialStaysCappedForLateAttempts() {
        let policy = RetryPolicy(
            maxAttempts: 1000, backoff: .exponential(base: .milliseconds(500), maximum: .seconds(300)))
        for attempt in [20, 62, 63, 64, 100, 999] {
            #expect(policy.delay(afterAttempt: attempt) == .seconds(300), "attempt \(attempt)")
        }
    }

    /// The cap applies before multiplying: `base × 2^62` would overflow `Duration` and trap.
    @Test func exponentialWithALargeBaseStaysCappedForLateAttempts() {
        let policy = RetryPolicy(
            maxAttempts: 100, backoff: .exponential(base: .seconds(60), maximum: .seconds(3600)))
        #expect(policy.delay(afterAttempt: 6) == .seconds(1920))
        for attempt in [7, 62, 63, 70, 99] {
            #expect(policy.delay(afterAttempt: attempt) == .seconds(3600), "attempt \(attempt)")
        }
    }

    @Test func immediateIsZeroEvenWithJitter() {
        let policy = RetryPolicy(maxAttempts: 3, backoff: .immediate, jitter: true)
        #expect(delays(policy) == [.zero, .zero, nil, nil])
    }

    @Test func delayWithoutAGeneratorMatchesWithoutJitter() {
        let policy = RetryPolicy.linear(.seconds(1), maxAttempts: 3)
        #expect(policy.delay(afterAttempt: 2) == .seconds(2))
        #expect(policy.delay(afterAttempt: 3) == nil)
    }

    @Test(arguments: [
        RetryPolicy.Backoff.fixed(.seconds(3)), .linear(step: .milliseconds(700)),
        .exponential(base: .milliseconds(250), maximum: .seconds(10)),
    ])
    func jitterStaysInTheUpperHalf(_ backoff: RetryPolicy.Backoff) throws {
        let plain = RetryPolicy(maxAttempts: 6, backoff: backoff)
        let jittered = RetryPolicy(maxAttempts: 6, backoff: backoff, jitter: true)
        var generator = SplitMix64(seed: 0x1BAD_5EED)
        for attempt in 1...5 {
            let full = try #require(plain.delay(afterAttempt: attempt))
            var draws: [Duration] = []
            for _ in 0..<1000 {
                guard let delay = jittered.delay(afterAttempt: attempt, using: &generator) else {
                    Issue.record("no delay after attempt \(attempt)")
                    return
                }
                draws.append(delay)
            }
            let lowest = draws.min()!
            let highest = draws.max()!
            #expect(lowest >= full / 2, "attempt \(attempt): \(lowest) < \(full / 2)")
            #expect(highest <= full, "attempt \(attempt): \(highest) > \(full)")
            // The draws spread over the half rather than sticking to one value.
            #expect(lowest < full * 0.55 && highest > full * 0.95, "attempt \(attempt): \(lowest)…\(highest)")
            #expect(jittered.delay(afterAttempt: 6, using: &generator) == nil)
        }
    }

    @Test func jitterIsReproducibleWithTheSameSeed() {
        let policy = RetryPolicy.exponential(base: .seconds(1), maximum: .seconds(60), maxAttempts: 8)
        var first = SplitMix64(seed: 42)
        var second = SplitMix64(seed: 42)
        let a = (1...7).map { policy.delay(afterAttempt: $0, using: &first) }
        let b = (1...7).map { policy.delay(afterAttempt: $0, using: &second) }
        #expect(a == b)
        #expect(Set(a.compactMap { $0 }).count == 7)
    }
}
