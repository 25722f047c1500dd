// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writing to the terminal: results on stdout, diagnostics on stderr.
enum Console {
    static func out(_ text: String) {
        write(1, text + "\n")
    }

    static func error(_ text: String) {
        write(2, text + "\n")
    }

    /// One JSON object on one line of stdout: what `--json` promises scripts.
    static func json(_ object: JSONObjectOutput) {
        out(String(decoding: object.bytes, as: UTF8.self))
    }

    /// A value through `JSONEncoder` on one line of stdout; a value it cannot write (a
    /// non-finite number) fails the command instead of leaving stdout empty with status 0.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        out(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Text from a message, safe for a terminal: control characters (a producer's ESC
    /// sequences, newlines) are shown escaped, never sent.
    static func printable(_ text: String) -> String {
        var shown = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control || scalar == "\u{7F}" {
                shown += scalar == "\n" ? "\\n" : "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                shown.unicodeScalars.append(scalar)
            }
        }
        return shown
    }

    /// Rewrites the current stderr line; only on a terminal.
    static func progress(_ text: String) {
        guard isTerminal(2) else { return }
        write(2, "\r\u{1B}[2K" + text)
    }

    static func endProgress() {
        guard isTerminal(2) else { return }
        write(2, "\r\u{1B}[2K")
    }

    #if canImport(Glibc)
        private static let systemWrite = Glibc.write
    #else
        private static let systemWrite = Darwin.write
    #endif

    static func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) == 1 }

    private static func write(_ descriptor: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
