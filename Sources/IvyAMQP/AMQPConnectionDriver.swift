// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CRabbitMQ
internal import IvyCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// The loop on an AMQP connection's own thread: the only code that touches its session.
///
/// Each turn it takes every command handed over, writes them back to back (so publishes that
/// arrived together are confirmed together), reads whatever rabbitmq-c holds or the socket
/// has, and fails publishes whose deadline passed; then it waits in `poll` on the socket and
/// the inbox's wake pipe, for at most half the heartbeat interval or until the next deadline.
/// Nothing waits for a reply in a blocking call: requests that expect one are queued per
/// channel and matched to the broker's replies in order, so a `basic.get` or `basic.consume`
/// never holds up confirms and deliveries.
final class AMQPConnectionDriver {
    typealias Completion<Value> = AMQPCommand.Completion<Value>

    /// A reply the work channel owes, in the order the requests went out.
    private enum WorkReply {
        case qos
        case consume(tag: String, Completion<String>)
        case cancel(tag: String, Completion<Void>)
        case get(queue: String, Completion<AMQPDelivery?>)
    }

    private enum AdminRequest {
        case declare(name: String, durable: Bool, arguments: [String: AMQPHeaderValue], passive: Bool)
        case purge(String)
        case delete(String)
        /// Channel 2 opened again after the broker closed it.
        case open

        var label: String {
            switch self {
            case .declare(let name, _, _, let passive):
                "\(passive ? "passive " : "")queue.declare of \"\(name)\""
            case .purge(let name): "queue.purge of \"\(name)\""
            case .delete(let name): "queue.delete of \"\(name)\""
            case .open: "channel.open"
            }
        }
    }

    private enum AdminReply {
        case declared(AMQPConnection.QueueCounts)
        case purged(Int)
        case deleted(Int)
        case opened
    }

    /// A request on channel 2 waiting for its reply; `handle` runs on this thread.
    private struct AdminOperation {
        let request: AdminRequest
        let handle: (Result<AdminReply, IvyError>) -> Void
    }

    private struct PendingPublish {
        let messageID: String
        let routingKey: String
        let completion: Completion<Void>
    }

    /// Frames read in one go before the inbox gets a look again.
    private static let framesPerTurn = 4096

    private let session: AMQPSession
    private let inbox: AMQPInbox
    private let configuration: AMQPConfiguration
    private let generation: UInt64
    private let onClosed: @Sendable (IvyError) -> Void
    private let clock = ContinuousClock()
    private var confirms = PublisherConfirms<PendingPublish>()
    /// Publishes waiting while the broker blocks publishing (`connection.blocked`).
    private var held = FIFOBuffer<AMQPCommand.Publish>()
    private var blockedReason: String?
    private var workReplies = FIFOBuffer<WorkReply>()
    private var adminOperations = FIFOBuffer<AdminOperation>()
    private var consumers: [String: AMQPCommand.Consumer] = [:]
    /// Delivery tags handed out and not yet acked or rejected: settling another one would make
    /// the broker close channel 1 (`PRECONDITION_FAILED - unknown delivery tag`).
    private var unsettled: Set<UInt64> = []
    /// The consumers that got deliveries in the current read turn, told when it ends.
    private var consumersDelivered: [String: AMQPCommand.Consumer] = [:]
    /// When rabbitmq-c last found nothing more to read, which is when it sends a due heartbeat
    /// and notices a missing one.
    private var lastDrained: ContinuousClock.Instant
    /// Why the connection can no longer be used; set once.
    private var failure: IvyError?

    private init(
        session: AMQPSession, inbox: AMQPInbox, configuration: AMQPConfiguration, generation: UInt64,
        onClosed: @escaping @Sendable (IvyError) -> Void
    ) {
        self.session = session
        self.inbox = inbox
        self.configuration = configuration
        self.generation = generation
        self.onClosed = onClosed
        lastDrained = clock.now
    }

    /// Opens the session, reports the outcome to `opened`, then runs the loop until the
    /// connection is closed or lost. Call on the connection's own thread.
    static func run(
        _ configuration: AMQPConfiguration, name: String, generation: UInt64, inbox: AMQPInbox,
        onClosed: @escaping @Sendable (IvyError) -> Void, opened: (Result<Void, IvyError>) -> Void
    ) {
        let session: AMQPSession
        switch Result(catching: { () throws(IvyError) in try AMQPSession.open(configuration, name: name) }) {
        case .success(let opened): session = opened
        case .failure(let error):
            _ = inbox.end(with: error)
            opened(.failure(error))
            inbox.finish()
            return
        }
        opened(.success(()))
        AMQPConnectionDriver(
            session: session, inbox: inbox, configuration: configuration, generation: generation,
            onClosed: onClosed
        ).loop()
    }

    private func loop() {
        while true {
            let work = inbox.take()
            if work.isClosed { return shutDown(settlingFirst: work.commands) }
            var next = 0
            while next < work.commands.count && failure == nil {
                execute(work.commands[next])
                next += 1
            }
            // Writing can make rabbitmq-c read (to see heartbeats while the socket is full).
            if failure == nil && session.hasBufferedInput { readFrames() }
            if failure == nil { expireDeadlines() }
            if let failure { return end(failure, unexecuted: Array(work.commands[next...])) }
            session.releaseBuffers()
            if session.hasBufferedInput { continue }
            waitForEvents()
            if let failure { return end(failure, unexecuted: []) }
        }
    }

    // MARK: Waiting

    private func waitForEvents() {
        let socket = session.fileDescriptor
        guard socket >= 0 else {
            fail(
                IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: "the socket is closed"))
            return
        }
        var fds = [
            pollfd(fd: inbox.wake.readEnd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&fds, nfds_t(fds.count), pollTimeout())
        if ready < 0 { return }  // EINTR: look at the inbox again
        if fds[0].revents != 0 { inbox.wake.drain() }
        let heartbeatDue = heartbeatCheckInterval.map { clock.now - lastDrained >= $0 } ?? false
        if fds[1].revents != 0 || heartbeatDue { readFrames() }
        if failure == nil { expireDeadlines() }
    }

    /// Half the heartbeat interval: how often rabbitmq-c must get the chance to send one and to
    /// notice the broker's are missing. Nil without heartbeats.
    private var heartbeatCheckInterval: Duration? {
        session.heartbeat > .zero ? session.heartbeat / 2 : nil
    }

    /// Milliseconds until the next heartbeat check or deadline; -1 for none.
    private func pollTimeout() -> Int32 {
        var until = heartbeatCheckInterval.map { lastDrained + $0 }
        for deadline in [confirms.nextDeadline(), held.first?.deadline].compactMap({ $0 }) {
            until = until.map { min($0, deadline) } ?? deadline
        }
        guard let until else { return -1 }
        let remaining = until - clock.now
        guard remaining > .zero else { return 0 }
        // Rounded up, so the wake-up is never before the instant it is for.
        return Int32(min(remaining.wholeMilliseconds, 3_600_000) + 1)
    }

    // MARK: Reading

    private func readFrames() {
        defer {
            for consumer in consumersDelivered.values { consumer.onBurstEnd() }
            consumersDelivered.removeAll(keepingCapacity: true)
        }
        for _ in 0..<Self.framesPerTurn {
            guard failure == nil else { return }
            switch session.nextFrame() {
            case .frame(let frame): dispatch(frame)
            case .drained:
                lastDrained = clock.now
                return
            case .failed(let status): connectionLost(status)
            }
        }
    }

    private func dispatch(_ frame: amqp_frame_t) {
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD: handle(frame.payload.method, on: frame.channel)
        case AMQP_FRAME_HEARTBEAT: return  // rabbitmq-c queues them while it waits to write
        default: protocolError("a content frame without its method on channel \(frame.channel)")
        }
    }

    private func handle(_ method: amqp_method_t, on channel: amqp_channel_t) {
        if let reason = AMQPCloseReason(method) { return closedByBroker(channel, reason) }
        switch channel {
        case 0: handleConnectionMethod(method)
        case AMQPSession.workChannel: handleWorkMethod(method)
        case AMQPSession.adminChannel: handleAdminReply(method)
        default: protocolError("a method on channel \(channel), which this client never opened")
        }
    }

    private func handleConnectionMethod(_ method: amqp_method_t) {
        switch method.id {
        case AMQP_CONNECTION_BLOCKED_METHOD:
            blockedReason =
                fields(method, as: amqp_connection_blocked_t.self)?.reason.string ?? "no reason given"
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            blockedReason = nil
            while failure == nil, let publish = held.popFirst() { send(publish) }
        default:
            break  // nothing else needs an answer
        }
    }

    private func handleWorkMethod(_ method: amqp_method_t) {
        switch method.id {
        case AMQP_BASIC_ACK_METHOD:
            guard let ack = fields(method, as: amqp_basic_ack_t.self) else { return missingFields(method) }
            for publish in confirms.settle(ack.delivery_tag, multiple: ack.multiple != 0) {
                publish.completion(.success(()))
            }
        case AMQP_BASIC_NACK_METHOD:
            guard let nack = fields(method, as: amqp_basic_nack_t.self) else { return missingFields(method) }
            for publish in confirms.settle(nack.delivery_tag, multiple: nack.multiple != 0) {
                publish.completion(
                    .failure(
                        commandFailed(
                            "the broker could not take message \(publish.messageID) (routing key "
                                + "\"\(publish.routingKey)\"; basic.nack)")))
            }
        case AMQP_BASIC_RETURN_METHOD:
            guard let returned = fields(method, as: amqp_basic_return_t.self) else {
                return missingFields(method)
            }
            let reason = AMQPCloseReason(
                code: returned.reply_code, text: returned.reply_text.string, method: nil)
            let exchange = returned.exchange.string
            let routingKey = returned.routing_key.string
            guard let content = readContent() else { return }
            guard let messageID = content.messageID,
                let publish = confirms.returned(
                    .init(exchange: exchange, routingKey: routingKey, messageID: messageID))
            else { return }
            publish.completion(
                .failure(
                    commandFailed(
                        "no queue took message \(messageID) (exchange \"\(exchange)\", routing key "
                            + "\"\(routingKey)\"): \(reason)")))
        case AMQP_BASIC_DELIVER_METHOD:
            guard let deliver = fields(method, as: amqp_basic_deliver_t.self) else {
                return missingFields(method)
            }
            let tag = deliver.consumer_tag.string
            let consumer = consumers[tag]
            guard
                let delivery = readDelivery(
                    consumerTag: tag, queue: consumer?.queue ?? "", deliveryTag: deliver.delivery_tag,
                    redelivered: deliver.redelivered != 0, exchange: deliver.exchange.string,
                    routingKey: deliver.routing_key.string)
            else { return }
            guard let consumer else {
                // Nobody to hand it to (cancelled meanwhile): back to the queue at once.
                let status = session.reject(delivery.deliveryTag, requeue: true)
                if status != AMQP_STATUS_OK.rawValue { connectionLost(status) }
                return
            }
            unsettled.insert(delivery.deliveryTag)
            consumer.onDelivery(delivery)
            consumersDelivered[consumer.tag] = consumer
        case AMQP_BASIC_GET_OK_METHOD:
            guard let got = fields(method, as: amqp_basic_get_ok_t.self) else { return missingFields(method) }
            guard case .get(let queue, let completion) = workReplies.first else { return unexpected(method) }
            guard
                let delivery = readDelivery(
                    consumerTag: nil, queue: queue, deliveryTag: got.delivery_tag,
                    redelivered: got.redelivered != 0,
                    exchange: got.exchange.string, routingKey: got.routing_key.string)
            else { return }
            _ = workReplies.popFirst()
            unsettled.insert(delivery.deliveryTag)
            completion(.success(delivery))
        case AMQP_BASIC_GET_EMPTY_METHOD:
            guard case .get(_, let completion) = workReplies.first else { return unexpected(method) }
            _ = workReplies.popFirst()
            completion(.success(nil))
        case AMQP_BASIC_QOS_OK_METHOD:
            guard case .qos = workReplies.first else { return unexpected(method) }
            _ = workReplies.popFirst()
        case AMQP_BASIC_CONSUME_OK_METHOD:
            guard case .consume(let tag, let completion) = workReplies.first else {
                return unexpected(method)
            }
            _ = workReplies.popFirst()
            completion(.success(tag))
        case AMQP_BASIC_CANCEL_OK_METHOD:
            guard case .cancel(let tag, let completion) = workReplies.first else { return unexpected(method) }
            _ = workReplies.popFirst()
            consumers[tag] = nil
            completion(.success(()))
        case AMQP_BASIC_CANCEL_METHOD:
            // The broker cancelled a consumer: its queue was deleted (or its node went away).
            guard let cancel = fields(method, as: amqp_basic_cancel_t.self) else {
                return missingFields(method)
            }
            let tag = cancel.consumer_tag.string
            if cancel.nowait == 0 {
                let status = session.cancelOK(tag)
                guard status == AMQP_STATUS_OK.rawValue else {
                    connectionLost(status)
                    return
                }
            }
            consumers.removeValue(forKey: tag)?.onCancel()
        case AMQP_CHANNEL_FLOW_METHOD:
            let active = fields(method, as: amqp_channel_flow_t.self)?.active ?? 1
            let status = session.channelFlowOK(AMQPSession.workChannel, active: active != 0)
            if status != AMQP_STATUS_OK.rawValue { connectionLost(status) }
        default:
            break
        }
    }

    private func handleAdminReply(_ method: amqp_method_t) {
        let reply: AdminReply
        switch method.id {
        case AMQP_QUEUE_DECLARE_OK_METHOD:
            guard let ok = fields(method, as: amqp_queue_declare_ok_t.self) else {
                return missingFields(method)
            }
            reply = .declared((messages: Int(ok.message_count), consumers: Int(ok.consumer_count)))
        case AMQP_QUEUE_PURGE_OK_METHOD:
            guard let ok = fields(method, as: amqp_queue_purge_ok_t.self) else {
                return missingFields(method)
            }
            reply = .purged(Int(ok.message_count))
        case AMQP_QUEUE_DELETE_OK_METHOD:
            guard let ok = fields(method, as: amqp_queue_delete_ok_t.self) else {
                return missingFields(method)
            }
            reply = .deleted(Int(ok.message_count))
        case AMQP_CHANNEL_OPEN_OK_METHOD:
            reply = .opened
        case AMQP_CHANNEL_FLOW_METHOD:
            let active = fields(method, as: amqp_channel_flow_t.self)?.active ?? 1
            let status = session.channelFlowOK(AMQPSession.adminChannel, active: active != 0)
            if status != AMQP_STATUS_OK.rawValue { connectionLost(status) }
            return
        default:
            return
        }
        let matches =
            switch (adminOperations.first?.request, reply) {
            case (.declare?, .declared), (.purge?, .purged), (.delete?, .deleted), (.open?, .opened): true
            default: false
            }
        guard matches, let operation = adminOperations.popFirst() else { return unexpected(method) }
        operation.handle(.success(reply))
    }

    /// The message content behind a `basic.deliver` or `basic.get-ok`, as a delivery.
    private func readDelivery(
        consumerTag: String?, queue: String, deliveryTag: UInt64, redelivered: Bool, exchange: String,
        routingKey: String
    ) -> AMQPDelivery? {
        guard let content = readContent() else { return nil }
        return AMQPDelivery(
            consumerTag: consumerTag, deliveryTag: deliveryTag, generation: generation,
            redelivered: redelivered,
            queue: queue, exchange: exchange, routingKey: routingKey, messageID: content.messageID,
            body: content.body, headers: content.headers)
    }

    /// The content behind the method just read on the work channel; nil, with the connection
    /// failed, when something else came.
    private func readContent() -> AMQPSession.Content? {
        switch session.readContent(on: AMQPSession.workChannel) {
        case .content(let content): return content
        case .closed(let reason):
            closedByBroker(AMQPSession.workChannel, reason)
            return nil
        case .failed(let status):
            connectionLost(status)
            return nil
        }
    }

    /// The decoded fields of `method`, copied; nil if rabbitmq-c gave none.
    private func fields<Fields>(_ method: amqp_method_t, as type: Fields.Type) -> Fields? {
        method.decoded?.assumingMemoryBound(to: type).pointee
    }

    // MARK: Executing commands

    private func execute(_ command: AMQPCommand) {
        switch command {
        case .publish(let publish):
            if blockedReason == nil { send(publish) } else { held.append(publish) }
        case .declareQueue(let name, let durable, let arguments, let passive, let completion):
            sendAdmin(.declare(name: name, durable: durable, arguments: arguments, passive: passive)) {
                result in
                completion(
                    result.flatMap { reply in
                        guard case .declared(let counts) = reply else { return .failure(self.mismatch) }
                        return .success(counts)
                    })
            }
        case .purgeQueue(let name, let completion):
            sendAdmin(.purge(name)) { result in
                completion(
                    result.flatMap { reply in
                        guard case .purged(let count) = reply else { return .failure(self.mismatch) }
                        return .success(count)
                    })
            }
        case .deleteQueue(let name, let completion):
            sendAdmin(.delete(name)) { result in
                completion(
                    result.flatMap { reply in
                        guard case .deleted(let count) = reply else { return .failure(self.mismatch) }
                        return .success(count)
                    })
            }
        case .get(let queue, let completion):
            afterCheckingQueue(queue, failing: completion) {
                self.sendWork(.get(queue: queue, completion)) { $0.get(queue) }
            }
        case .consume(let consumer, let completion):
            afterCheckingQueue(consumer.queue, failing: completion) { self.start(consumer, completion) }
        case .cancel(let tag, let completion):
            guard consumers[tag] != nil else { return completion(.success(())) }
            sendWork(.cancel(tag: tag, completion)) { $0.cancel(tag) }
        case .ack(let tag, let completion):
            settle(tag, completion) { $0.ack(tag) }
        case .reject(let tag, let requeue, let completion):
            settle(tag, completion) { $0.reject(tag, requeue: requeue) }
        }
    }

    private func send(_ publish: AMQPCommand.Publish) {
        let status = session.publish(
            exchange: publish.exchange, routingKey: publish.routingKey, body: publish.body,
            messageID: publish.messageID, persistent: publish.persistent, headers: publish.headers)
        guard status == AMQP_STATUS_OK.rawValue else {
            return publish.completion(.failure(connectionLost(status)))
        }
        confirms.published(
            .init(exchange: publish.exchange, routingKey: publish.routingKey, messageID: publish.messageID),
            deadline: publish.deadline,
            token: PendingPublish(
                messageID: publish.messageID, routingKey: publish.routingKey, completion: publish.completion))
    }

    /// Sends a request on the work channel and queues the reply it owes.
    private func sendWork(_ reply: WorkReply, _ write: (AMQPSession) -> Int32) {
        let status = write(session)
        guard status == AMQP_STATUS_OK.rawValue else {
            return fail(reply, with: connectionLost(status))
        }
        workReplies.append(reply)
    }

    /// `basic.qos` then `basic.consume`, the consumer registered first: its deliveries may
    /// follow `consume-ok` at once.
    private func start(_ consumer: AMQPCommand.Consumer, _ completion: @escaping Completion<String>) {
        consumers[consumer.tag] = consumer
        sendWork(.qos) { $0.qos(prefetch: consumer.prefetch) }
        if let failure {
            consumers[consumer.tag] = nil
            return completion(.failure(failure))
        }
        sendWork(.consume(tag: consumer.tag, completion)) { $0.consume(consumer.queue, tag: consumer.tag) }
    }

    /// Acks or rejects a delivery this connection handed out and nobody settled yet.
    private func settle(_ tag: UInt64, _ completion: Completion<Void>, _ write: (AMQPSession) -> Int32) {
        guard unsettled.remove(tag) != nil else {
            return completion(
                .failure(
                    IvyError(
                        .reservationLost, endpoint: configuration.endpoint,
                        detail: "delivery tag \(tag) is not waiting for an ack on this connection")))
        }
        let status = write(session)
        guard status == AMQP_STATUS_OK.rawValue else {
            return completion(.failure(AMQPCommand.settlementFailed(connectionLost(status))))
        }
        completion(.success(()))
    }

    /// A passive declare of `queue` on channel 2 before `then`, so that a missing queue fails
    /// the command instead of channel 1 (and with it every delivery and confirm in flight).
    private func afterCheckingQueue<Value>(
        _ queue: String, failing completion: @escaping Completion<Value>, then: @escaping () -> Void
    ) {
        sendAdmin(.declare(name: queue, durable: false, arguments: [:], passive: true)) { result in
            switch result {
            case .success: then()
            case .failure(let error): completion(.failure(error))
            }
        }
    }

    private func sendAdmin(_ request: AdminRequest, handle: @escaping (Result<AdminReply, IvyError>) -> Void)
    {
        send(AdminOperation(request: request, handle: handle))
    }

    /// Writes an operation on channel 2 and queues it for its reply.
    @discardableResult
    private func send(_ operation: AdminOperation) -> Bool {
        let status =
            switch operation.request {
            case .declare(let name, let durable, let arguments, let passive):
                session.declareQueue(name, durable: durable, passive: passive, arguments: arguments)
            case .purge(let name): session.purgeQueue(name)
            case .delete(let name): session.deleteQueue(name)
            case .open: session.openChannel(AMQPSession.adminChannel)
            }
        guard status == AMQP_STATUS_OK.rawValue else {
            operation.handle(.failure(connectionLost(status)))
            return false
        }
        adminOperations.append(operation)
        return true
    }

    private func expireDeadlines() {
        let now = clock.now
        for publish in confirms.expired(at: now) {
            publish.completion(
                .failure(
                    commandFailed(
                        "the broker did not confirm message \(publish.messageID) (routing key "
                            + "\"\(publish.routingKey)\") within the send deadline of "
                            + "\(configuration.sendDeadline.inSeconds) s; it may or may not be queued")))
        }
        while let publish = held.first, publish.deadline <= now {
            _ = held.popFirst()
            publish.completion(
                .failure(
                    commandFailed(
                        "message \(publish.messageID) was not sent: the broker has blocked publishing ("
                            + "\(blockedReason ?? "no reason given")) for longer than the send deadline of "
                            + "\(configuration.sendDeadline.inSeconds) s")))
        }
    }

    // MARK: Closing

    /// The broker closed a channel or the connection. Channel 2 is opened again after failing
    /// the request it refused; anything else ends the connection.
    private func closedByBroker(_ channel: amqp_channel_t, _ reason: AMQPCloseReason) {
        switch channel {
        case 0:
            session.connectionCloseOK()
            fail(
                IvyError(
                    .connectionFailed, endpoint: configuration.endpoint,
                    detail: "the broker closed the connection: \(reason)"))
        case AMQPSession.adminChannel:
            reopenAdminChannel(after: reason)
        default:
            _ = session.channelCloseOK(channel)
            fail(commandFailed("the broker closed channel \(channel): \(reason)"))
        }
    }

    /// Answers the broker's `channel.close` on channel 2, opens it again and sends again the
    /// requests the broker discarded after the one it refused (it ignores everything on a
    /// closing channel); then fails the refused one.
    private func reopenAdminChannel(after reason: AMQPCloseReason) {
        let refused = adminOperations.popFirst()
        var discarded: [AdminOperation] = []
        while let operation = adminOperations.popFirst() { discarded.append(operation) }
        if case .open? = refused?.request {
            let error = fail(
                IvyError(
                    .connectionFailed, endpoint: configuration.endpoint,
                    detail: "the broker refused to open channel 2 again: \(reason)"))
            for operation in discarded { operation.handle(.failure(error)) }
            return
        }
        let status = session.channelCloseOK(AMQPSession.adminChannel)
        guard status == AMQP_STATUS_OK.rawValue else {
            let error = connectionLost(status)
            for operation in [refused].compactMap({ $0 }) + discarded { operation.handle(.failure(error)) }
            return
        }
        var sent = send(AdminOperation(request: .open) { _ in })
        for operation in discarded {
            if sent { sent = send(operation) } else { operation.handle(.failure(failure ?? mismatch)) }
        }
        refused?.handle(.failure(commandFailed("\(refused?.request.label ?? "a request") failed: \(reason)")))
    }

    /// Closes at the caller's request: acks and rejects handed over before the close still go
    /// out (they settle work that was done); everything else fails with ``IvyError/Code/closed``.
    private func shutDown(settlingFirst commands: [AMQPCommand]) {
        let closed = IvyError(.closed, endpoint: configuration.endpoint, detail: "the connection was closed")
        var unexecuted: [AMQPCommand] = []
        for command in commands {
            switch command {
            case .ack, .reject:
                if failure == nil { execute(command) } else { unexecuted.append(command) }
            default:
                unexecuted.append(command)
            }
        }
        failure = closed
        end(closed, unexecuted: unexecuted, notify: false)
    }

    /// Fails everything pending with `error`, closes the session (politely, if the socket still
    /// allows), tells `onClosed` unless the caller closed, and ends the thread.
    private func end(_ error: IvyError, unexecuted: [AMQPCommand], notify: Bool = true) {
        let late = inbox.end(with: error)
        for publish in confirms.removeAll() { publish.completion(.failure(error)) }
        while let publish = held.popFirst() { publish.completion(.failure(error)) }
        while let reply = workReplies.popFirst() { fail(reply, with: error) }
        while let operation = adminOperations.popFirst() { operation.handle(.failure(error)) }
        consumers = [:]
        unsettled = []
        for command in unexecuted + late { command.fail(error) }
        session.close()
        if notify { onClosed(error) }
        inbox.finish()
    }

    private func fail(_ reply: WorkReply, with error: IvyError) {
        switch reply {
        case .qos: break
        case .consume(let tag, let completion):
            consumers[tag] = nil
            completion(.failure(error))
        case .cancel(_, let completion): completion(.failure(error))
        case .get(_, let completion): completion(.failure(error))
        }
    }

    /// Marks the connection unusable; the first reason sticks. Returns the reason that stuck.
    @discardableResult
    private func fail(_ error: IvyError) -> IvyError {
        let first = failure ?? error
        failure = first
        return first
    }

    @discardableResult
    private func connectionLost(_ status: Int32) -> IvyError {
        let detail =
            status == AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue
            ? "no heartbeat from the broker for \((session.heartbeat * 2).inSeconds) s"
            : "connection lost: \(AMQPSession.text(status))"
        return fail(IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: detail))
    }

    private func protocolError(_ detail: String) {
        fail(
            IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: "protocol error: \(detail)")
        )
    }

    private func unexpected(_ method: amqp_method_t) {
        protocolError("an unexpected method 0x\(String(method.id, radix: 16))")
    }

    private func missingFields(_ method: amqp_method_t) {
        protocolError("method 0x\(String(method.id, radix: 16)) without its fields")
    }

    /// For a reply of the wrong kind, which ``handleAdminReply(_:)`` never passes on.
    private var mismatch: IvyError {
        IvyError(
            .connectionFailed, endpoint: configuration.endpoint, detail: "protocol error: a mismatched reply")
    }

    private func commandFailed(_ detail: String) -> IvyError {
        IvyError(.commandFailed, endpoint: configuration.endpoint, detail: detail)
    }
}
