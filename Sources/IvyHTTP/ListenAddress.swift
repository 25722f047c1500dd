// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// Where a server listens: a numeric IPv4 or IPv6 address (or `localhost`) and a port.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address as given (`localhost` as `127.0.0.1`), without brackets.
    public let host: String
    /// The port; 0 lets the system choose one.
    public let port: Int

    /// Parses `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (loopback).
    ///
    /// - Throws: `IvyError.Code.invalidConfiguration` for anything else: a host name other
    ///   than `localhost`, a port outside 0–65535.
    public init(_ text: String) throws(IvyError) {
        func bad(_ why: String) -> IvyError {
            IvyError.invalidConfiguration("listen address", mustBe: why, got: text)
        }
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else {
                throw bad("HOST:PORT or [IPV6]:PORT")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw bad("HOST:PORT or [IPV6]:PORT")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard let port = Int(portPart), (0...65535).contains(port), portPart.allSatisfy(\.isASCII) else {
            throw bad("a port from 0 to 65535 after the colon")
        }
        let host = hostPart.isEmpty || hostPart == "localhost" ? "127.0.0.1" : String(hostPart)
        guard Self.family(of: host) != nil else {
            throw bad("a numeric IPv4 or IPv6 address, or localhost")
        }
        self.host = host
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Whether only this machine can connect: 127.0.0.0/8 or ::1.
    public var isLoopback: Bool { Self.isLoopback(host: host) }

    /// Whether `host`, a numeric address, is one only this machine has: 127.0.0.0/8 or ::1.
    public static func isLoopback(host: String) -> Bool {
        host == "::1" || (family(of: host) == AF_INET && host.hasPrefix("127."))
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// `AF_INET` or `AF_INET6` for a numeric address; nil for anything else.
    static func family(of host: String) -> Int32? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return AF_INET }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return AF_INET6 }
        return nil
    }

    /// Calls `body` with the address as a `sockaddr`.
    func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>) -> Result) -> Result {
        if Self.family(of: host) == AF_INET6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port)).bigEndian
            _ = inet_pton(AF_INET6, host, &address.sin6_addr)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body)
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        _ = inet_pton(AF_INET, host, &address.sin_addr)
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }
}
