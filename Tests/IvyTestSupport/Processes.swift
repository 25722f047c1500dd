// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Questions about other processes, for tests of what a command leaves behind.
public enum Processes {
    /// Whether `pid` no longer runs: it does not exist, or it is a zombie. An orphan's zombie
    /// stays until its new parent reaps it, and in a container whose first process reaps
    /// nothing that is never.
    public static func isGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else {
            return true
        }
        // "pid (comm) S …": the state follows the last ')', as comm may hold anything.
        guard let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// The process ids in a file, one a line (what `echo $! >> FILE` writes).
    public static func identifiers(in file: URL) -> [Int32] {
        ((try? String(contentsOf: file, encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline)
            .compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// The processes, zombies aside, whose command line (arguments joined by spaces) contains
    /// `text`: how a test finds what a command started when it cannot be told the pids.
    public static func matching(_ text: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
                return false
            }
            let line = String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            return line.contains(text) && !isGone(pid)
        }
    }
}
