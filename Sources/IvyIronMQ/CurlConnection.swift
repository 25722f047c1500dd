// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CCurl
internal import Dispatch
internal import IvyCore
internal import Synchronization

/// One HTTP/1.1 keep-alive connection: a libcurl easy handle owned by an OS thread of its own,
/// which performs the requests handed to it one after another, never on the cooperative pool.
///
/// libcurl keeps the TCP (and TLS) connection in the handle between requests, so consecutive
/// requests to the same server reuse it.
final class CurlConnection: Sendable {
    private struct Job: Sendable {
        let request: HTTPRequest
        let completion: @Sendable (Result<HTTPResponse, CurlError>) -> Void
    }

    /// What libcurl reported for a request that got no HTTP response.
    struct CurlError: Error, Sendable, CustomStringConvertible {
        let code: Int
        let description: String
    }

    private let jobs = Mutex<(queue: FIFOBuffer<Job>, isClosed: Bool)>((FIFOBuffer(), false))
    private let ready = DispatchSemaphore(value: 0)
    /// Requests handed over and not yet completed: the pool sends new ones to the least busy.
    let inFlight = Atomic<Int>(0)
    /// Long polls among them: a connection holding one is where an ack must not wait.
    let longPolls = Atomic<Int>(0)

    /// libcurl's global state, set up once before the first handle (it is not thread-safe).
    private static let initialised: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    init(name: String, connectTimeout: Duration, verifyTLS: Bool) {
        _ = Self.initialised
        DedicatedThread.start(name: name) { [self] in
            run(connectTimeout: connectTimeout, verifyTLS: verifyTLS)
        }
    }

    /// Queues `request`; `completion` gets its outcome once, on this connection's thread.
    func perform(
        _ request: HTTPRequest, completion: @escaping @Sendable (Result<HTTPResponse, CurlError>) -> Void
    ) {
        let accepted = jobs.withLock { jobs in
            guard !jobs.isClosed else { return false }
            inFlight.add(1, ordering: .relaxed)
            if request.isLongPoll { longPolls.add(1, ordering: .relaxed) }
            jobs.queue.append(Job(request: request, completion: completion))
            return true
        }
        guard accepted else {
            return completion(.failure(CurlError(code: -1, description: "the connection is closed")))
        }
        ready.signal()
    }

    /// Performs the requests already queued, then ends the thread.
    func close() {
        jobs.withLock { $0.isClosed = true }
        ready.signal()
    }

    private func run(connectTimeout: Duration, verifyTLS: Bool) {
        let handle = curl_easy_init()
        defer { if let handle { curl_easy_cleanup(handle) } }
        while true {
            ready.wait()
            let (job, isClosed) = jobs.withLock { ($0.queue.popFirst(), $0.isClosed) }
            guard let job else {
                if isClosed { return }
                continue
            }
            let outcome: Result<HTTPResponse, CurlError> =
                if !Self.initialised {
                    .failure(CurlError(code: -1, description: "curl_global_init failed"))
                } else if let handle {
                    Self.perform(
                        job.request, on: handle, connectTimeout: connectTimeout, verifyTLS: verifyTLS)
                } else {
                    .failure(CurlError(code: -1, description: "curl_easy_init failed"))
                }
            inFlight.subtract(1, ordering: .relaxed)
            if job.request.isLongPoll { longPolls.subtract(1, ordering: .relaxed) }
            job.completion(outcome)
        }
    }

    /// Collects a response body from libcurl's write callback, up to a limit.
    private final class Sink {
        var bytes: [UInt8] = []
        let limit: Int
        init(limit: Int) { self.limit = limit }
    }

    private static func perform(
        _ request: HTTPRequest, on handle: UnsafeMutableRawPointer, connectTimeout: Duration, verifyTLS: Bool
    ) -> Result<HTTPResponse, CurlError> {
        // Options from the last request go; the connection and DNS caches stay.
        curl_easy_reset(handle)
        let sink = Sink(limit: request.maximumResponse)
        var headers: UnsafeMutablePointer<curl_slist>? = nil
        // `Expect:` off: libcurl would wait for a "100 Continue" before sending a large body.
        for line in request.headers + ["Expect:", "Authorization: \(request.authorization.exposedValue)"] {
            guard let appended = curl_slist_append(headers, line) else {
                curl_slist_free_all(headers)
                return .failure(CurlError(code: -1, description: "out of memory for the request's headers"))
            }
            headers = appended
        }
        defer { curl_slist_free_all(headers) }
        let code: CURLcode = request.url.withCString { url in
            ivy_curl_setopt_pointer(handle, CURLOPT_URL, url)
            ivy_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headers)
            ivy_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            ivy_curl_setopt_long(handle, CURLOPT_TCP_NODELAY, 1)
            ivy_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeout.wholeMilliseconds))
            ivy_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(request.timeout.wholeMilliseconds))
            ivy_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, verifyTLS ? 1 : 0)
            ivy_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, verifyTLS ? 2 : 0)
            ivy_curl_setopt_write_function(handle) { data, size, count, context in
                guard let data, let context else { return 0 }
                let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
                // Returning less than was given makes libcurl abandon the transfer.
                guard sink.bytes.count + size * count <= sink.limit else { return 0 }
                sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
                return size * count
            }
            ivy_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
            return request.method.rawValue.withCString { method in
                ivy_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, method)
                guard let body = request.body else {
                    return withExtendedLifetime(sink) { curl_easy_perform(handle) }
                }
                return body.withUnsafeBytes { bytes in
                    ivy_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count))
                    ivy_curl_setopt_pointer(
                        handle, CURLOPT_POSTFIELDS, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1))
                    return withExtendedLifetime(sink) { curl_easy_perform(handle) }
                }
            }
        }
        guard code == CURLE_OK else {
            return .failure(
                CurlError(code: Int(code.rawValue), description: String(cString: curl_easy_strerror(code))))
        }
        var status = 0
        ivy_curl_response_code(handle, &status)
        return .success(HTTPResponse(status: status, body: sink.bytes))
    }
}
