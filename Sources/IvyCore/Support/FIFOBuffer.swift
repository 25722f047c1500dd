// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// An array used as a first-in, first-out queue with O(1) amortised pops.
///
/// Inlinable so that other modules (the Redis connection's in-flight list) get it specialised:
/// unspecialised, every append looked up the element type's metadata.
package struct FIFOBuffer<Element> {
    @usableFromInline var storage: [Element] = []
    @usableFromInline var head = 0

    @inlinable package init() {}

    @inlinable package var count: Int { storage.count - head }
    @inlinable package var isEmpty: Bool { head == storage.count }

    @inlinable package mutating func append(_ element: Element) { storage.append(element) }

    @inlinable package mutating func popFirst() -> Element? {
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
    @inlinable package var first: Element? { head < storage.count ? storage[head] : nil }

    @inlinable package func prefix(_ maximum: Int) -> ArraySlice<Element> {
        storage[head..<min(storage.count, head + maximum)]
    }
}
