// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CHiredis
internal import Foundation
internal import IvyCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// The loop on a connection's own thread: the only code that touches its hiredis context.
///
/// It writes whatever was submitted as soon as it is submitted, without waiting for earlier
/// replies (full-duplex pipelining), and hands replies back in order as they arrive. Between
/// the two it waits in `poll` on the socket and the request queue's wake pipe.
final class RedisConnectionDriver {
    private struct InFlight {
        let request: RedisRequestQueue.Request
        let deadline: ContinuousClock.Instant
    }

    /// A request waiting for a connection, with the connection attempts it has seen fail.
    private struct Unsent {
        let request: RedisRequestQueue.Request
        var failedAttempts = 0
    }

    /// Connection attempts a request waits through before it fails.
    private static let connectAttempts = 3

    private let configuration: RedisConfiguration
    private let queue: RedisRequestQueue
    private let clock = ContinuousClock()
    private var context: RedisContext?
    private var unsent: [Unsent] = []
    private var inFlight = FIFOBuffer<InFlight>()
    /// Replies already read for the oldest request in flight.
    private var headReplies: [RedisReply] = []
    private var consecutiveFailures = 0
    private var nextConnectAttempt: ContinuousClock.Instant?

    init(configuration: RedisConfiguration, queue: RedisRequestQueue) {
        self.configuration = configuration
        self.queue = queue
    }

    func run() {
        while true {
            let work = queue.take()
            // Taken first, so that requests submitted just before the close fail with it too.
            unsent += work.requests.map { Unsent(request: $0) }
            if work.isClosed {
                failEverything(with: IvyError(.closed, endpoint: configuration.endpoint))
                context = nil
                return
            }
            if !work.interrupted.isEmpty { interrupt(work.interrupted) }
            if !unsent.isEmpty { sendUnsent() }
            waitForEvents()
        }
    }

    // MARK: Writing

    private func sendUnsent() {
        guard let context = connectedContext() else { return }
        let batch = unsent.map(\.request)
        unsent.removeAll(keepingCapacity: true)
        let deadline = clock.now + configuration.commandTimeout
        var connectChecks: [RedisRequestQueue.Request] = []
        var next = 0
        do {
            while next < batch.count {
                let request = batch[next]
                if request.replyCount == 0 {
                    connectChecks.append(request)
                } else {
                    try context.append(encoded: request.encoded)
                    inFlight.append(InFlight(request: request, deadline: deadline + request.extraTime))
                }
                next += 1
            }
            try context.flush()
        } catch {
            connectionLost(error)
            fail(Array(batch[next...]), with: error)
        }
        complete(connectChecks)
    }

    private func complete(_ connectChecks: [RedisRequestQueue.Request]) {
        guard !connectChecks.isEmpty else { return }
        queue.finished(connectChecks.map(\.id))
        for request in connectChecks { request.completion(.success([])) }
    }

    /// The live context, connecting first when there is none and no backoff is running.
    /// Requests that have waited through enough failed attempts fail here.
    private func connectedContext() -> RedisContext? {
        if let context { return context }
        if let next = nextConnectAttempt, clock.now < next { return nil }
        do {
            let context = try RedisContext(configuration)
            queue.clientID = context.clientID
            self.context = context
            consecutiveFailures = 0
            nextConnectAttempt = nil
            return context
        } catch {
            consecutiveFailures += 1
            nextConnectAttempt = clock.now + RedisConnection.retryDelay(afterFailures: consecutiveFailures)
            // Wrong or missing credentials will not get better by retrying.
            let hopeless = RedisContext.isAuthenticationFailure(error)
            var giving: [RedisRequestQueue.Request] = []
            unsent = unsent.compactMap { item in
                var item = item
                item.failedAttempts += 1
                if hopeless || item.request.failsFast || item.failedAttempts >= Self.connectAttempts {
                    giving.append(item.request)
                    return nil
                }
                return item
            }
            fail(giving, with: error)
            return nil
        }
    }

    // MARK: Waiting and reading

    private func waitForEvents() {
        var fds = [pollfd(fd: queue.wake.readEnd, events: Int16(POLLIN), revents: 0)]
        // With a live connection and nothing left to write, callers may write to it themselves
        // while this thread waits; the socket is then watched for their replies too.
        let parked = context?.allowsCallerWrites == true && unsent.isEmpty
        if let context, parked || !inFlight.isEmpty {
            fds.append(pollfd(fd: context.fileDescriptor, events: Int16(POLLIN), revents: 0))
            if parked { queue.park(socket: context.fileDescriptor) }
        }
        var timeout = pollTimeout()
        if parked {
            // Requests written meanwhile are not in `inFlight` yet: wake in time for theirs.
            let cap = Int32(clamping: min(configuration.commandTimeout.wholeMilliseconds, 86_400_000) + 1)
            timeout = timeout < 0 ? cap : min(timeout, cap)
        }
        let ready = poll(&fds, nfds_t(fds.count), timeout)
        if parked { takeUnparked() }
        if ready < 0 { return }  // EINTR: look at the queue again
        if fds[0].revents != 0 { queue.wake.drain() }
        if fds.count > 1 && fds[1].revents != 0 { readReplies() }
        // Checked whatever woke the poll: steady submissions must not keep a stuck reply waiting.
        if let head = inFlight.first, clock.now >= head.deadline {
            let limit = RedisContext.seconds(configuration.commandTimeout + head.request.extraTime)
            connectionLost(
                IvyError(
                    .connectionFailed, endpoint: configuration.endpoint,
                    detail: "\(head.request.label) timed out after \(limit) s"))
        }
    }

    /// Takes over what callers wrote while this thread was parked, before any reply is read.
    private func takeUnparked() {
        let unparked = queue.unpark()
        for sent in unparked.sent {
            inFlight.append(
                InFlight(
                    request: sent.request,
                    deadline: sent.at + configuration.commandTimeout + sent.request.extraTime))
        }
        guard !unparked.remainder.isEmpty, let context else { return }
        do {
            try context.append(encoded: unparked.remainder)
            try context.flush()
        } catch {
            connectionLost(error)
        }
    }

    /// Milliseconds until the oldest request's deadline or the next connection attempt; -1 for none.
    private func pollTimeout() -> Int32 {
        var until: ContinuousClock.Instant?
        if let head = inFlight.first { until = head.deadline }
        if !unsent.isEmpty, let next = nextConnectAttempt { until = until.map { min($0, next) } ?? next }
        guard let until else { return -1 }
        let remaining = until - clock.now
        guard remaining > .zero else { return 0 }
        return Int32(min(remaining.wholeMilliseconds, 60_000) + 1)
    }

    private func readReplies() {
        guard let context else { return }
        let replies: [RedisReply]
        do { replies = try context.readAvailable() } catch {
            connectionLost(error)
            return
        }
        var done: [(RedisRequestQueue.Request, [RedisReply])] = []
        for reply in replies {
            guard let head = inFlight.first else {
                connectionLost(
                    IvyError(
                        .connectionFailed, endpoint: configuration.endpoint,
                        detail: "a reply nobody asked for"))
                break
            }
            headReplies.append(reply)
            if headReplies.count == head.request.replyCount {
                _ = inFlight.popFirst()
                done.append((head.request, headReplies))
                headReplies = []
            }
        }
        guard !done.isEmpty else { return }
        queue.finished(done.map(\.0.id))
        for (request, replies) in done { request.completion(.success(replies)) }
    }

    // MARK: Failing

    private func interrupt(_ ids: Set<UInt64>) {
        let (interrupted, kept) = unsent.partitioned { ids.contains($0.request.id) }
        unsent = kept
        fail(interrupted.map(\.request), with: CancellationError())
        guard inFlight.prefix(inFlight.count).contains(where: { ids.contains($0.request.id) }) else { return }
        // The reply to a command on the wire cannot be skipped: the connection has to go.
        var requests: [RedisRequestQueue.Request] = []
        while let item = inFlight.popFirst() { requests.append(item.request) }
        headReplies = []
        dropContext()
        let (cancelled, others) = requests.partitioned { ids.contains($0.id) }
        fail(cancelled, with: CancellationError())
        fail(
            others, with: IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: "interrupted")
        )
    }

    /// Fails every request on the wire and drops the context; the next request reconnects.
    private func connectionLost(_ error: any Error) {
        var requests: [RedisRequestQueue.Request] = []
        while let item = inFlight.popFirst() { requests.append(item.request) }
        headReplies = []
        dropContext()
        consecutiveFailures = max(consecutiveFailures, 1)
        nextConnectAttempt = clock.now + RedisConnection.retryDelay(afterFailures: consecutiveFailures)
        fail(requests, with: error)
    }

    /// Forgets the connection; its server-side id must not be used to unblock anyone now.
    private func dropContext() {
        context = nil
        queue.clientID = nil
    }

    private func failEverything(with error: any Error) {
        var requests = unsent.map(\.request)
        unsent.removeAll()
        while let item = inFlight.popFirst() { requests.append(item.request) }
        fail(requests, with: error)
    }

    private func fail(_ requests: [RedisRequestQueue.Request], with error: any Error) {
        guard !requests.isEmpty else { return }
        queue.finished(requests.map(\.id))
        for request in requests { request.completion(.failure(error)) }
    }
}

extension Array {
    /// The elements that satisfy `belongs`, and the others, each in order.
    fileprivate func partitioned(_ belongs: (Element) -> Bool) -> (matching: [Element], others: [Element]) {
        var matching: [Element] = []
        var others: [Element] = []
        for element in self {
            if belongs(element) { matching.append(element) } else { others.append(element) }
        }
        return (matching, others)
    }
}
