// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Testing

@testable import IvyCore

@Suite("Random words")
struct RandomWordsTests {
    @Test func valuesStayDistinctAcrossRefills() {
        let words = RandomWords(batch: 8)
        let values = (0..<1_000).map { _ in words.next() }
        // 64 random bits each: a repeat means a batch was handed out twice or not refilled.
        #expect(Set(values).count == values.count)
        #expect(values.contains { $0 != 0 }, "the pool was never filled")
    }

    @Test func separatePoolsDoNotShareValues() {
        let first = (0..<64).map { _ in RandomWords(batch: 4).next() }
        #expect(Set(first).count == first.count)
    }
}
