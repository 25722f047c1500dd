// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CRabbitMQ
internal import IvyCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// One rabbitmq-c connection: the owner of its `amqp_connection_state_t` and socket, opened
/// with channel 1 in confirm mode and channel 2 beside it.
///
/// Not `Sendable`: only its connection's thread uses it. Opening and ``close()`` block that
/// thread (bounded by the connect timeout); the other calls write to the socket or read what
/// is already there. rabbitmq-c's structures that point into Swift memory (names, bodies,
/// tables) are built inside `withUnsafe…` closures around the one call that encodes them.
final class AMQPSession {
    /// Publishing (confirm mode), consuming, `basic.get`, acks: what one delivery tag space holds.
    static let workChannel: amqp_channel_t = 1
    /// Declarations and inspection, whose errors (a passive declare of a missing queue) close
    /// only this channel, which is opened again.
    static let adminChannel: amqp_channel_t = 2
    /// The largest frame asked for (rabbitmq-c's and RabbitMQ's default); bodies are split.
    static let frameMax: Int32 = 131_072

    /// What reading the next frame found.
    enum FrameRead {
        case frame(amqp_frame_t)
        /// Nothing more arrived; rabbitmq-c sent a heartbeat if one was due.
        case drained
        case failed(status: Int32)
    }

    /// A message's content: the header frame's properties and the body frames.
    struct Content {
        var messageID: String?
        var headers: [String: AMQPHeaderValue]
        var body: [UInt8]
    }

    /// What reading a message's content after its method found.
    enum ContentRead {
        case content(Content)
        /// A `channel.close` came instead.
        case closed(AMQPCloseReason)
        case failed(status: Int32)
    }

    private let state: amqp_connection_state_t
    let endpoint: String
    /// The heartbeat interval agreed with the broker; zero: none.
    let heartbeat: Duration
    /// Whether the socket may still carry a polite `connection.close`.
    private var isOpen = true

    private init(state: amqp_connection_state_t, endpoint: String, heartbeat: Duration) {
        self.state = state
        self.endpoint = endpoint
        self.heartbeat = heartbeat
    }

    deinit { amqp_destroy_connection(state) }

    /// Connects (TCP or TLS), logs in with PLAIN and opens the two channels, all within the
    /// configuration's connect timeout.
    ///
    /// - Parameter name: Shown by the broker as the connection's name (`connection_name`).
    /// - Throws: ``IvyError/Code/connectionFailed`` saying what failed: the TCP connection or the
    ///   TLS handshake with rabbitmq-c's reason, a refused login with the broker's
    ///   `ACCESS_REFUSED` text, a virtual host the broker does not have or lets the user use,
    ///   or a timeout.
    static func open(_ configuration: AMQPConfiguration, name: String) throws(IvyError) -> AMQPSession {
        let endpoint = configuration.endpoint
        let deadline = ContinuousClock.now + configuration.connectTimeout
        guard let state = amqp_new_connection() else { preconditionFailure("rabbitmq-c could not allocate") }
        var loggedIn = false
        do throws(IvyError) {
            try connectSocket(state, configuration, deadline: deadline)
            var remaining = timeval(until: deadline)
            _ = amqp_set_handshake_timeout(state, &remaining)
            _ = amqp_set_rpc_timeout(state, &remaining)
            let reply = withClientProperties(name: name) { properties in
                withUnsafePointer(to: properties) { properties in
                    ivy_amqp_login_plain(
                        state, configuration.virtualHost, 0, frameMax,
                        heartbeatSeconds(configuration.heartbeat),
                        properties, configuration.user, configuration.password.exposedValue)
                }
            }
            try check(reply, state, configuration, doing: "login")
            loggedIn = true
            for (channel, confirm) in [(workChannel, true), (adminChannel, false)] {
                _ = amqp_channel_open(state, channel)
                try check(
                    amqp_get_rpc_reply(state), state, configuration, doing: "opening channel \(channel)")
                if confirm {
                    _ = amqp_confirm_select(state, channel)
                    try check(amqp_get_rpc_reply(state), state, configuration, doing: "confirm.select")
                }
            }
        } catch {
            if loggedIn && amqp_get_sockfd(state) >= 0 {
                _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
            }
            amqp_destroy_connection(state)
            throw error
        }
        return AMQPSession(state: state, endpoint: endpoint, heartbeat: .seconds(amqp_get_heartbeat(state)))
    }

    /// The socket, for `poll`; -1 once closed.
    var fileDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether rabbitmq-c holds frames or bytes already read from the socket, which `poll`
    /// cannot see: read them before waiting.
    var hasBufferedInput: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    // MARK: Reading

    /// The next frame if one is buffered or on the socket now, without waiting. Sends a
    /// heartbeat when one is due and fails with `AMQP_STATUS_HEARTBEAT_TIMEOUT` when the
    /// broker's are missing. The frame's decoded fields live until ``releaseBuffers()``.
    func nextFrame() -> FrameRead {
        var frame = amqp_frame_t()
        var now = ivy_timeval(0, 0)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &now)
        switch status {
        case AMQP_STATUS_OK.rawValue: return .frame(frame)
        case AMQP_STATUS_TIMEOUT.rawValue: return .drained
        default:
            isOpen = false
            return .failed(status: status)
        }
    }

    /// Reads the header and body frames that follow a `basic.deliver`, `basic.get-ok` or
    /// `basic.return` on `channel` (the broker sends them right behind it).
    func readContent(on channel: amqp_channel_t) -> ContentRead {
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_message(&message) }
            let properties = message.properties
            let flags = properties._flags
            return .content(
                Content(
                    messageID: flags & amqp_flags_t(AMQP_BASIC_MESSAGE_ID_FLAG) != 0
                        ? properties.message_id.string : nil,
                    headers: flags & amqp_flags_t(AMQP_BASIC_HEADERS_FLAG) != 0
                        ? AMQPFieldTable.decode(properties.headers) : [:],
                    body: message.body.array))
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if let reason = AMQPCloseReason(reply.reply) { return .closed(reason) }
            return .failed(status: AMQP_STATUS_UNEXPECTED_STATE.rawValue)
        default:
            isOpen = false
            return .failed(status: reply.library_error)
        }
    }

    /// Lets rabbitmq-c reuse the memory of the frames read so far (those still queued stay).
    func releaseBuffers() { amqp_maybe_release_buffers(state) }

    // MARK: Writing

    /// `basic.publish` on the work channel, mandatory, with the message id, delivery mode and
    /// headers as properties.
    func publish(
        exchange: String, routingKey: String, body: [UInt8], messageID: String, persistent: Bool,
        headers: [String: AMQPHeaderValue]
    ) -> Int32 {
        withAMQPBytes(exchange) { exchange in
            withAMQPBytes(routingKey) { routingKey in
                withAMQPBytes(messageID) { messageID in
                    AMQPFieldTable.withEncoded(headers) { table in
                        withAMQPBytes(body) { body in
                            var properties = amqp_basic_properties_t()
                            properties._flags = amqp_flags_t(
                                AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG
                                    | (headers.isEmpty ? 0 : AMQP_BASIC_HEADERS_FLAG))
                            properties.message_id = messageID
                            properties.delivery_mode = persistent ? 2 : 1
                            properties.headers = table
                            return written(
                                amqp_basic_publish(
                                    state, Self.workChannel, exchange, routingKey, 1, 0, &properties, body))
                        }
                    }
                }
            }
        }
    }

    func declareQueue(_ name: String, durable: Bool, passive: Bool, arguments: [String: AMQPHeaderValue])
        -> Int32
    {
        withAMQPBytes(name) { queue in
            AMQPFieldTable.withEncoded(arguments) { arguments in
                var method = amqp_queue_declare_t()
                method.queue = queue
                method.passive = passive ? 1 : 0
                method.durable = durable ? 1 : 0
                method.arguments = arguments
                return send(AMQP_QUEUE_DECLARE_METHOD, on: Self.adminChannel, &method)
            }
        }
    }

    func purgeQueue(_ name: String) -> Int32 {
        withAMQPBytes(name) { queue in
            var method = amqp_queue_purge_t()
            method.queue = queue
            return send(AMQP_QUEUE_PURGE_METHOD, on: Self.adminChannel, &method)
        }
    }

    func deleteQueue(_ name: String) -> Int32 {
        withAMQPBytes(name) { queue in
            var method = amqp_queue_delete_t()
            method.queue = queue
            return send(AMQP_QUEUE_DELETE_METHOD, on: Self.adminChannel, &method)
        }
    }

    /// `basic.get` with manual ack on the work channel.
    func get(_ queue: String) -> Int32 {
        withAMQPBytes(queue) { queue in
            var method = amqp_basic_get_t()
            method.queue = queue
            return send(AMQP_BASIC_GET_METHOD, on: Self.workChannel, &method)
        }
    }

    /// `basic.qos` for the next consumer on the work channel (global false: per consumer).
    func qos(prefetch: UInt16) -> Int32 {
        var method = amqp_basic_qos_t()
        method.prefetch_count = prefetch
        return send(AMQP_BASIC_QOS_METHOD, on: Self.workChannel, &method)
    }

    /// `basic.consume` with manual acks.
    func consume(_ queue: String, tag: String) -> Int32 {
        withAMQPBytes(queue) { queue in
            withAMQPBytes(tag) { tag in
                var method = amqp_basic_consume_t()
                method.queue = queue
                method.consumer_tag = tag
                return send(AMQP_BASIC_CONSUME_METHOD, on: Self.workChannel, &method)
            }
        }
    }

    func cancel(_ tag: String) -> Int32 {
        withAMQPBytes(tag) { tag in
            var method = amqp_basic_cancel_t()
            method.consumer_tag = tag
            return send(AMQP_BASIC_CANCEL_METHOD, on: Self.workChannel, &method)
        }
    }

    /// Answers a broker's `basic.cancel` that asked for an answer.
    func cancelOK(_ tag: String) -> Int32 {
        withAMQPBytes(tag) { tag in
            var method = amqp_basic_cancel_ok_t()
            method.consumer_tag = tag
            return send(AMQP_BASIC_CANCEL_OK_METHOD, on: Self.workChannel, &method)
        }
    }

    func ack(_ deliveryTag: UInt64) -> Int32 {
        written(amqp_basic_ack(state, Self.workChannel, deliveryTag, 0))
    }

    func reject(_ deliveryTag: UInt64, requeue: Bool) -> Int32 {
        written(amqp_basic_reject(state, Self.workChannel, deliveryTag, requeue ? 1 : 0))
    }

    func openChannel(_ channel: amqp_channel_t) -> Int32 {
        var method = amqp_channel_open_t()
        return send(AMQP_CHANNEL_OPEN_METHOD, on: channel, &method)
    }

    /// Answers the broker's `channel.close`.
    func channelCloseOK(_ channel: amqp_channel_t) -> Int32 {
        var method = amqp_channel_close_ok_t()
        return send(AMQP_CHANNEL_CLOSE_OK_METHOD, on: channel, &method)
    }

    func channelFlowOK(_ channel: amqp_channel_t, active: Bool) -> Int32 {
        var method = amqp_channel_flow_ok_t()
        method.active = active ? 1 : 0
        return send(AMQP_CHANNEL_FLOW_OK_METHOD, on: channel, &method)
    }

    /// Answers the broker's `connection.close`; the broker then closes the socket.
    func connectionCloseOK() {
        var method = amqp_connection_close_ok_t()
        _ = send(AMQP_CONNECTION_CLOSE_OK_METHOD, on: 0, &method)
        isOpen = false
    }

    /// Closes the connection politely (`connection.close`, which closes its channels, then its
    /// `close-ok`), waiting at most the connect timeout; nothing when the socket is gone.
    func close() {
        guard isOpen, fileDescriptor >= 0 else { return }
        isOpen = false
        _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
    }

    /// rabbitmq-c's text for a status code, such as "a socket error occurred".
    static func text(_ status: Int32) -> String {
        guard let text = amqp_error_string2(status) else { return "status \(status)" }
        return String(cString: text)
    }

    private func send<Method>(_ id: amqp_method_number_t, on channel: amqp_channel_t, _ method: inout Method)
        -> Int32
    {
        written(withUnsafeMutablePointer(to: &method) { amqp_send_method(state, channel, id, $0) })
    }

    /// Notes a failed write: the socket is then beyond a polite close.
    private func written(_ status: Int32) -> Int32 {
        if status != AMQP_STATUS_OK.rawValue { isOpen = false }
        return status
    }

    // MARK: Opening

    private static func connectSocket(
        _ state: amqp_connection_state_t, _ configuration: AMQPConfiguration,
        deadline: ContinuousClock.Instant
    ) throws(IvyError) {
        func failure(_ detail: String) -> IvyError {
            IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: detail)
        }
        let socket: OpaquePointer
        if configuration.scheme == "amqps" {
            // Peer and host name verification are rabbitmq-c's defaults; set anyway, so that a
            // change of default cannot turn them off.
            guard let tls = amqp_ssl_socket_new(state) else { throw failure("OpenSSL could not be set up") }
            amqp_ssl_socket_set_verify_peer(tls, 1)
            if let address = ipAddress(configuration.host) {
                // rabbitmq-c 0.11 knows no IP SANs: OpenSSL checks the address instead.
                amqp_ssl_socket_set_verify_hostname(tls, 0)
                guard ivy_amqp_ssl_expect_ip_address(tls, address) == AMQP_STATUS_OK.rawValue else {
                    throw failure("OpenSSL cannot check the broker's certificate for \(address)")
                }
            } else {
                amqp_ssl_socket_set_verify_hostname(tls, 1)
            }
            guard
                amqp_ssl_socket_set_ssl_versions(tls, AMQP_TLSv1_2, AMQP_TLSvLATEST)
                    == AMQP_STATUS_OK.rawValue
            else { throw failure("OpenSSL cannot require TLS 1.2 or later") }
            if let file = configuration.caCertificateFile {
                guard amqp_ssl_socket_set_cacert(tls, file) == AMQP_STATUS_OK.rawValue else {
                    throw failure("cannot read the CA certificates in \(file)")
                }
            } else {
                guard ivy_amqp_ssl_trust_system_store(tls) == AMQP_STATUS_OK.rawValue else {
                    throw failure("cannot load the system's CA certificates")
                }
            }
            if let certificate = configuration.clientCertificateFile, let key = configuration.clientKeyFile {
                guard amqp_ssl_socket_set_key(tls, certificate, key) == AMQP_STATUS_OK.rawValue else {
                    throw failure("cannot read the client certificate \(certificate) and its key \(key)")
                }
            }
            socket = tls
        } else {
            guard let tcp = amqp_tcp_socket_new(state) else {
                preconditionFailure("rabbitmq-c could not allocate")
            }
            socket = tcp
        }
        var timeout = timeval(until: deadline)
        let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            let limit = configuration.connectTimeout.inSeconds
            let timedOut =
                status == AMQP_STATUS_TIMEOUT.rawValue
                || (status == AMQP_STATUS_SOCKET_ERROR.rawValue && ContinuousClock.now >= deadline)
            throw failure(timedOut ? "cannot connect within \(limit) s" : "cannot connect: \(text(status))")
        }
    }

    /// The host as an IPv4 or IPv6 address literal (without an IPv6 address's brackets); nil
    /// for a host name.
    static func ipAddress(_ host: String) -> String? {
        let address = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var buffer = in6_addr()
        let isAddress =
            inet_pton(AF_INET, address, &buffer) == 1 || inet_pton(AF_INET6, address, &buffer) == 1
        return isAddress ? address : nil
    }

    /// Turns a failed login or channel RPC into an error; answers a `connection.close`.
    private static func check(
        _ reply: amqp_rpc_reply_t, _ state: amqp_connection_state_t, _ configuration: AMQPConfiguration,
        doing action: String
    ) throws(IvyError) {
        func failure(_ detail: String) -> IvyError {
            IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: detail)
        }
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            guard let reason = AMQPCloseReason(reply.reply) else {
                throw failure("\(action) failed: the broker answered with an unexpected method")
            }
            if reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD {
                var method = amqp_connection_close_ok_t()
                _ = amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &method)
            }
            switch reason.code {
            case UInt16(AMQP_ACCESS_REFUSED) where action == "login" && reason.method != "connection.open":
                throw failure("the broker refused the login of user \"\(configuration.user)\": \(reason)")
            case UInt16(AMQP_NOT_ALLOWED), UInt16(AMQP_ACCESS_REFUSED):
                throw failure(
                    "the broker refused virtual host \"\(configuration.virtualHost)\" to user "
                        + "\"\(configuration.user)\": \(reason)")
            default:
                throw failure("the broker closed the connection during \(action): \(reason)")
            }
        default:
            let status = reply.library_error
            switch status {
            case AMQP_STATUS_TIMEOUT.rawValue:
                throw failure("\(action) did not finish within \(configuration.connectTimeout.inSeconds) s")
            case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue:
                throw failure("the broker closed the connection during \(action)")
            default:
                throw failure("\(action) failed: \(text(status))")
            }
        }
    }

    /// The heartbeat in whole seconds, as AMQP has it: a fraction counts as a second.
    private static func heartbeatSeconds(_ heartbeat: Duration) -> Int32 {
        guard heartbeat > .zero else { return 0 }
        return Int32(min(Double(UInt16.max), max(1, heartbeat.inSeconds.rounded(.up))))
    }

    /// The client properties, valid inside `body`: the connection's name, and the capabilities
    /// without which RabbitMQ neither tells a consumer that its queue was deleted
    /// (`consumer_cancel_notify`) nor that it stopped reading publishes (`connection.blocked`).
    /// rabbitmq-c merges them with its own (`authentication_failure_close`, so a refused login
    /// gets the broker's reason instead of a closed socket).
    private static func withClientProperties<Result>(name: String, _ body: (amqp_table_t) -> Result) -> Result
    {
        let capabilities: [String: AMQPHeaderValue] = [
            "authentication_failure_close": true, "basic.nack": true, "connection.blocked": true,
            "consumer_cancel_notify": true, "publisher_confirms": true,
        ]
        return AMQPFieldTable.withEncoded(capabilities) { capabilities in
            AMQPFieldTable.withEncoded(
                ["connection_name": .string(name), "product": "Ivy for Swift"],
                tables: ["capabilities": capabilities],
                body)
        }
    }
}

extension timeval {
    /// The time left until `deadline`, at least a millisecond (zero would mean "do not wait"
    /// to some of rabbitmq-c's calls and "wait forever" to none, but a spent budget should still
    /// let a ready answer through).
    init(until deadline: ContinuousClock.Instant) {
        let remaining = max(deadline - ContinuousClock.now, .milliseconds(1))
        let (seconds, attoseconds) = remaining.components
        self = ivy_timeval(Int(seconds), Int(attoseconds / 1_000_000_000_000))
    }
}
