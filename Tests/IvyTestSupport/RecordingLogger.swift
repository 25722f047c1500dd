// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore

/// A logger that keeps what it is told, so a test can await a log line as an event.
public final class RecordingLogger: IvyLogger {
    public let minimumLevel = LogLevel.debug
    private let lines = Locked<[String]>([])
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation

    public init() {
        (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {
        let line = ([message] + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(
            separator: " ")
        lines.withLock { $0.append(line) }
        changed.yield()
    }

    /// Every line so far: the message, then its metadata as `key=value`.
    public var text: [String] { lines.value }

    /// How many lines so far contain `text`.
    public func count(containing text: String) -> Int { lines.value.count { $0.contains(text) } }

    /// Waits until `count` lines contain `text`. One waiter at a time.
    public func waitFor(_ text: String, count: Int = 1) async {
        if self.count(containing: text) >= count { return }
        for await _ in changes where self.count(containing: text) >= count { return }
    }
}
