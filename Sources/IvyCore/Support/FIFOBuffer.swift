// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// An array used as a first-in, first-out queue with O(1) amortised pops.
package struct FIFOBuffer<Element> {
    private var storage: [Element] = []
    private var head = 0

    package init() {}

    package var count: Int { storage.count - head }
    package var isEmpty: Bool { head == storage.count }

    package mutating func append(_ element: Element) { storage.append(element) }

    package mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// The oldest element, without removing it.
    package var first: Element? { head < storage.count ? storage[head] : nil }

    package func prefix(_ maximum: Int) -> ArraySlice<Element> {
        storage[head..<min(storage.count, head + maximum)]
    }
}
