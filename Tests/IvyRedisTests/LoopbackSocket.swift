// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyCore

#if canImport(Glibc)
    import Glibc
#endif

/// A listening TCP socket on a loopback address and a port the kernel chose.
///
/// It never accepts: the kernel still completes connections' handshakes (up to its backlog), so
/// to a client it is a server that took the connection and never answers. Closing it frees
/// the port, which is how tests find a free one for a server of their own.
final class LoopbackSocket {
    let port: Int
    private let descriptor: Int32

    /// Listens on 127.0.0.1, or on ::1 when `ipv6` is set.
    ///
    /// - Throws: ``IvyError/Code/connectionFailed`` with the system's reason, when the address
    ///   cannot be bound (no IPv6 loopback, say).
    init(ipv6: Bool = false) throws {
        let family = ipv6 ? AF_INET6 : AF_INET
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Self.failure("socket") }
        var port: Int?
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
            port = Self.bindAndListen(descriptor, &address)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            port = Self.bindAndListen(descriptor, &address)
        }
        guard let port else {
            let error = Self.failure("bind \(ipv6 ? "[::1]" : "127.0.0.1")")
            close(descriptor)
            throw error
        }
        self.descriptor = descriptor
        self.port = port
    }

    deinit { close(descriptor) }

    /// A port nothing listens on now (a server started next can take it, barring a race).
    static func freePort(ipv6: Bool = false) throws -> Int {
        try LoopbackSocket(ipv6: ipv6).port
    }

    /// Binds `descriptor` to `address` (port 0), listens, and returns the port it got.
    private static func bindAndListen<Address>(_ descriptor: Int32, _ address: inout Address) -> Int? {
        let size = socklen_t(MemoryLayout<Address>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddr -> Bool in
                var length = size
                guard bind(descriptor, sockaddr, size) == 0, listen(descriptor, 64) == 0,
                    getsockname(descriptor, sockaddr, &length) == 0
                else { return false }
                return true
            }
        }
        guard bound else { return nil }
        // sin_port and sin6_port both sit right after the 2-byte family, in network order.
        let port = withUnsafeBytes(of: &address) { UInt16($0[2]) << 8 | UInt16($0[3]) }
        return Int(port)
    }

    private static func failure(_ call: String) -> IvyError {
        IvyError(.connectionFailed, detail: "\(call): \(String(cString: strerror(errno)))")
    }
}
