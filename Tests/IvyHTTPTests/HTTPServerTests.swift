// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyHTTP
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP server on libmicrohttpd, over loopback: what it hands the handler, and what it does
/// with requests that are malformed or too large (and that it stays up through them).
@Suite("HTTP server")
struct HTTPServerTests {
    /// A server whose handler describes the request it got.
    private func echoServer(_ options: HTTPServer.Options = HTTPServer.Options()) throws -> HTTPServer {
        try HTTPServer(listeningOn: ListenAddress("127.0.0.1:0"), options: options) { request in
            let lines = [
                "\(request.method) \(request.path)",
                "query \(request.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })",
                "header x-test \(request.header("X-Test") ?? "-")",
                "cookie session \(request.cookies["session"] ?? "-")",
                "body \(String(decoding: request.body, as: UTF8.self))",
            ]
            return HTTPResponse(
                status: request.path == "/missing" ? 404 : 200,
                headers: [("Content-Type", "text/plain"), ("X-Bad", "a\r\nInjected: yes")],
                body: Array(lines.joined(separator: "\n").utf8))
        }
    }

    @Test func aRequestReachesTheHandlerWhole() async throws {
        let server = try echoServer()
        #expect(server.address.port > 0 && server.address.isLoopback)
        let body = "a=1&b=two"
        let reply = try await RawHTTP.exchange(
            port: server.address.port,
            "POST /api/queues/q%20x?n=5&sort=old HTTP/1.1\r\nHost: localhost\r\nX-Test: yes\r\n"
                + "Cookie: session=abc; other=1\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
                + body)
        #expect(reply.status == 200)
        #expect(
            reply.body.components(separatedBy: "\n") == [
                "POST /api/queues/q x", "query [\"n=5\", \"sort=old\"]", "header x-test yes",
                "cookie session abc",
                "body a=1&b=two",
            ])
        #expect(reply.headers["content-length"] == String(reply.body.utf8.count))
        #expect(
            reply.headers["x-bad"] == nil && reply.headers["injected"] == nil, "no header with a line break")
        let missing = try await RawHTTP.exchange(
            port: server.address.port, "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(missing.status == 404)
        await server.close()
        await server.close()  // a second close does nothing
    }

    @Test func malformedAndOversizedRequestsAreRefusedAndTheServerStaysUp() async throws {
        var options = HTTPServer.Options()
        options.maximumBodySize = 1000
        options.connectionMemory = 8192
        let server = try echoServer(options)
        let port = server.address.port
        let garbage = try await RawHTTP.exchange(port: port, "THIS IS NOT HTTP\r\n\r\n")
        #expect(garbage.status == 400, "\(garbage)")
        let noHost = try await RawHTTP.exchange(port: port, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(noHost.status == 400, "HTTP/1.1 needs a Host header: \(noHost)")
        let declared = try await RawHTTP.exchange(
            port: port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n")
        #expect(declared.status == 413, "a declared body past the limit: \(declared)")
        let chunk = String(repeating: "x", count: 600)
        let chunked = try await RawHTTP.exchange(
            port: port,
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n")
        #expect(chunked.status == 413, "an undeclared body that grows past the limit: \(chunked)")
        let header = try await RawHTTP.exchange(
            port: port,
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "h", count: 20000))\r\nConnection: close\r\n\r\n"
        )
        #expect([413, 431].contains(header.status), "headers past the connection's memory: \(header)")
        let after = try await RawHTTP.exchange(
            port: port, "GET /still HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(after.status == 200 && after.body.hasPrefix("GET /still"), "the server is still up")
        await server.close()
    }

    /// A busy process has descriptors past select()'s 1024: connections there are still served.
    @Test func connectionsWithDescriptorsPastSelectsLimitAreServed() async throws {
        var held: [Int32] = []
        while held.count < 1100 {
            let descriptor = open("/dev/null", O_RDONLY)
            try #require(descriptor >= 0, "this test needs more than 1100 descriptors (ulimit -n)")
            held.append(descriptor)
        }
        let server = try echoServer()
        let reply = try await RawHTTP.exchange(
            port: server.address.port, "GET /busy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(reply.status == 200 && reply.body.hasPrefix("GET /busy"))
        await server.close()
        for descriptor in held { close(descriptor) }
    }

    @Test func badListenAddressesAreRefusedWithTheirReason() async throws {
        for text in ["8080", "example.com:80", "127.0.0.1:99999", "127.0.0.1:", "[::1]8080", "1.2.3.4.5:1"] {
            #expect(throws: IvyError.self, "\(text)") { _ = try ListenAddress(text) }
        }
        #expect(try ListenAddress("localhost:8080").description == "127.0.0.1:8080")
        #expect(try ListenAddress("[::1]:9464").isLoopback)
        #expect(try !ListenAddress("0.0.0.0:9464").isLoopback)
        let taken = try echoServer()
        let error = #expect(throws: IvyError.self) {
            _ = try HTTPServer(listeningOn: ListenAddress("127.0.0.1:\(taken.address.port)")) { _ in
                .error(500, "")
            }
        }
        #expect(error?.code == .connectionFailed)
        await taken.close()
    }
}
