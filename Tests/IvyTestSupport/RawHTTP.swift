// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Bytes sent to a server as they are, malformed ones included, and what came back until it
/// closed the connection: on a thread of its own, not the cooperative pool.
public enum RawHTTP {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// What came back: the status (0 when nothing did), headers by lowercased name, the body.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: String
    }

    public static func exchange(port: Int, _ request: [UInt8], timeout: Int = 20) async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result { try exchangeBlocking(port: port, request, timeout: timeout) })
            }
        }
    }

    public static func exchange(port: Int, _ request: String) async throws -> Reply {
        try await exchange(port: port, Array(request.utf8))
    }

    private static func exchangeBlocking(port: Int, _ request: [UInt8], timeout: Int) throws -> Reply {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(descriptor) }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect: \(errno)") }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            // A server that answered early (413) may close before it read everything.
            if count <= 0 { break }
            sent += count
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[..<count]
        }
        return parse(String(decoding: received, as: UTF8.self))
    }

    private static func parse(_ text: String) -> Reply {
        guard let split = text.range(of: "\r\n\r\n") else {
            return Reply(status: 0, headers: [:], body: text)
        }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status =
            head.first.flatMap { line in line.split(separator: " ").dropFirst().first.flatMap { Int($0) } }
            ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        return Reply(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}
