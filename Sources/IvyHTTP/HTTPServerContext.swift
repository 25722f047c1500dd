// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CMicroHTTPD
internal import Dispatch
internal import Synchronization

/// What the callbacks need, passed to libmicrohttpd as their context.
final class HTTPServerContext: Sendable {
    let options: HTTPServer.Options
    let handler: HTTPServer.Handler

    init(options: HTTPServer.Options, handler: @escaping HTTPServer.Handler) {
        self.options = options
        self.handler = handler
    }

    /// One call of the access handler (see libmicrohttpd's `MHD_AccessHandlerCallback`): the
    /// first with the headers, then one per piece of the body, then one to answer.
    func handle(
        _ connection: OpaquePointer, url: String, method: String, upload: UnsafePointer<CChar>?,
        uploadSize: UnsafeMutablePointer<Int>, state slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        guard let pointer = slot.pointee else {
            let state = RequestState()
            if let length = value(connection, .HEADER_KIND, "Content-Length").flatMap({ Int($0) }),
                length > options.maximumBodySize
            {
                state.isTooLarge = true
            }
            slot.pointee = Unmanaged.passRetained(state).toOpaque()
            state.answered = state.isTooLarge
            return state.isTooLarge ? queue(tooLarge, on: connection) : .YES
        }
        let state = Unmanaged<RequestState>.fromOpaque(pointer).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            let size = uploadSize.pointee
            uploadSize.pointee = 0
            guard !state.isTooLarge else {
                // Read and dropped, so that the 413 can go out once the body has ended (an
                // answer cannot be queued mid-body); a body that goes on and on is cut off.
                state.dropped += size
                return state.dropped > max(16 << 20, 4 * options.maximumBodySize) ? .NO : .YES
            }
            guard state.body.count + size <= options.maximumBodySize, let upload else {
                state.isTooLarge = true
                state.body = []
                return .YES
            }
            upload.withMemoryRebound(to: UInt8.self, capacity: size) {
                state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: size))
            }
            return .YES
        }
        guard !state.isTooLarge else { return state.answered ? .YES : queue(tooLarge, on: connection) }
        let request = HTTPRequest(
            method: method, path: url, query: values(connection, .GET_ARGUMENT_KIND),
            headers: Dictionary(
                values(connection, .HEADER_KIND).map { ($0.key.lowercased(), $0.value) },
                uniquingKeysWith: { $1 }),
            cookies: values(connection, .COOKIE_KIND), body: state.body)
        return queue(answer(request), on: connection)
    }

    private var tooLarge: HTTPResponse {
        .error(413, "the request body is larger than \(options.maximumBodySize) bytes")
    }

    /// The handler's answer, awaited on this connection's thread (libmicrohttpd's, not the
    /// cooperative pool's).
    private func answer(_ request: HTTPRequest) -> HTTPResponse {
        let answer = Mutex<HTTPResponse?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task { [handler] in
            let response = await handler(request)
            answer.withLock { $0 = response }
            done.signal()
        }
        done.wait()
        return answer.withLock { $0 } ?? .error(500, "no answer")
    }

    private func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
        let made = response.body.withUnsafeBytes { bytes in
            MHD_create_response_from_buffer(
                bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let made else { return .NO }
        defer { MHD_destroy_response(made) }
        for (name, value) in response.headers where Self.isSafe(name) && Self.isSafe(value) {
            _ = MHD_add_response_header(made, name, value)
        }
        // A status the library would refuse (or send as ICY) is the handler's bug: a 500.
        let status = (100...599).contains(response.status) ? response.status : 500
        return MHD_queue_response(connection, UInt32(status), made)
    }

    /// Whether a header name or value can be sent as it is: no line break, no NUL.
    private static func isSafe(_ text: String) -> Bool {
        !text.utf8.contains { $0 == 10 || $0 == 13 || $0 == 0 }
    }

    private func value(_ connection: OpaquePointer, _ kind: MHD_ValueKind, _ key: String) -> String? {
        MHD_lookup_connection_value(connection, kind, key).map { String(cString: $0) }
    }

    /// Every value of `kind` (headers, query arguments, cookies), the last of a repeated key.
    private func values(_ connection: OpaquePointer, _ kind: MHD_ValueKind) -> [String: String] {
        let collected = Unmanaged.passRetained(Collected())
        defer { collected.release() }
        _ = MHD_get_connection_values(
            connection, kind,
            { context, _, key, value in
                guard let context, let key else { return .YES }
                let collected = Unmanaged<Collected>.fromOpaque(context).takeUnretainedValue()
                collected.values[String(cString: key)] = value.map { String(cString: $0) } ?? ""
                return .YES
            }, collected.toOpaque())
        return collected.takeUnretainedValue().values
    }
}

/// What the values iterator collects, on one connection's thread.
private final class Collected {
    var values: [String: String] = [:]
}

/// One request's body so far, kept by libmicrohttpd between calls of the access handler, on
/// its connection's thread.
private final class RequestState {
    var body: [UInt8] = []
    var isTooLarge = false
    /// Bytes of a body too large, read and dropped.
    var dropped = 0
    /// A response was queued already (a 413 before the body).
    var answered = false
}

let accessHandler: MHD_AccessHandlerCallback = {
    context, connection, url, method, _, upload, uploadSize, state in
    guard let context, let connection, let uploadSize, let state else { return .NO }
    return Unmanaged<HTTPServerContext>.fromOpaque(context).takeUnretainedValue().handle(
        connection, url: url.map { String(cString: $0) } ?? "/",
        method: method.map { String(cString: $0) } ?? "",
        upload: upload, uploadSize: uploadSize, state: state)
}

let requestCompleted: MHD_RequestCompletedCallback = { _, _, state, _ in
    guard let state, let pointer = state.pointee else { return }
    Unmanaged<RequestState>.fromOpaque(pointer).release()
    state.pointee = nil
}
