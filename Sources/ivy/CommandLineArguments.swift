// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore

/// A subcommand's arguments, consumed option by option; whatever is left is an error.
struct CommandLineArguments {
    struct UsageError: Error, CustomStringConvertible {
        var description: String
    }

    private var remaining: [String]

    init(_ arguments: some Sequence<String>) {
        remaining = Array(arguments)
    }

    /// True when `--help` or `-h` was given.
    mutating func wantsHelp() -> Bool {
        flag("--help", "-h")
    }

    /// Removes a flag; true if it was present.
    mutating func flag(_ names: String...) -> Bool {
        let before = remaining.count
        remaining.removeAll { names.contains($0) }
        return remaining.count != before
    }

    /// Removes `--name VALUE` or `--name=VALUE` and returns VALUE (the last, if repeated).
    mutating func option(_ names: String...) throws(UsageError) -> String? {
        try values(names).last
    }

    /// Removes every `--name VALUE` and `--name=VALUE`, for a repeatable option, and returns the
    /// VALUEs in order.
    mutating func values(_ names: String...) throws(UsageError) -> [String] {
        try values(names)
    }

    private mutating func values(_ names: [String]) throws(UsageError) -> [String] {
        var values: [String] = []
        var index = 0
        while index < remaining.count {
            let argument = remaining[index]
            if names.contains(argument) {
                guard index + 1 < remaining.count else {
                    throw UsageError(description: "\(argument) needs a value")
                }
                values.append(remaining[index + 1])
                remaining.removeSubrange(index...index + 1)
                continue
            }
            if let name = names.first(where: { argument.hasPrefix($0 + "=") }) {
                values.append(String(argument.dropFirst(name.count + 1)))
                remaining.remove(at: index)
                continue
            }
            index += 1
        }
        return values
    }

    /// An integer option within `range`.
    mutating func integer(_ names: String..., default fallback: Int, range: ClosedRange<Int>)
        throws(UsageError) -> Int
    {
        var value: String?
        for name in names {
            if let found = try option(name) { value = found }
        }
        guard let value else { return fallback }
        return try Self.integer(value, for: names[0], range: range)
    }

    /// `text` as a whole number within `range`, for option `name`.
    static func integer(_ text: String, for name: String, range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let number = Int(text), range.contains(number) else {
            throw UsageError(
                description: "\(name) takes a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// A number of seconds, possibly fractional, within `range`.
    mutating func seconds(
        _ name: String, default fallback: Duration,
        range: ClosedRange<Duration> = .zero...(.seconds(86_400 * 366))
    ) throws(UsageError) -> Duration {
        guard let value = try option(name) else { return fallback }
        return try Self.seconds(value, for: name, range: range)
    }

    /// `text` as a number of seconds, possibly fractional, within `range`, for option `name`.
    static func seconds(_ text: String, for name: String, range: ClosedRange<Duration>) throws(UsageError)
        -> Duration
    {
        let lowest = range.lowerBound.inSeconds
        let highest = range.upperBound.inSeconds
        // Rejects nan and inf too: neither lies in a closed range of finite numbers.
        guard let seconds = Double(text), seconds >= lowest, seconds <= highest else {
            throw UsageError(
                description:
                    "\(name) takes a number of seconds from \(Self.text(lowest)) to \(Self.text(highest))")
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    private static func text(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int64(seconds)) : String(seconds)
    }

    /// A comma-separated list of non-empty names.
    mutating func names(_ name: String) throws(UsageError) -> [String]? {
        guard let value = try option(name) else { return nil }
        let names = value.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard !names.contains(where: \.isEmpty) else {
            throw UsageError(description: "\(name) takes comma-separated names, none of them empty")
        }
        return names
    }

    /// A comma-separated list of queue names.
    mutating func queueNames(_ name: String) throws(UsageError) -> [QueueName]? {
        guard let names = try names(name) else { return nil }
        var queues: [QueueName] = []
        for text in names {
            do { queues.append(try QueueName(text)) } catch {
                throw UsageError(description: "\(name): \(error.detail ?? "\(error)")")
            }
        }
        return queues
    }

    /// Removes and returns the arguments that are not options, in order: everything after
    /// `--`, and before it every argument that does not start with `-` or is a negative number.
    /// Call it after every option was taken, so that option values are not mistaken for them.
    mutating func positionals() -> [String] {
        var taken: [String] = []
        var kept: [String] = []
        var afterSeparator = false
        for argument in remaining {
            if afterSeparator {
                taken.append(argument)
            } else if argument == "--" {
                afterSeparator = true
            } else if !argument.hasPrefix("-") || Self.isNegativeNumber(argument) {
                taken.append(argument)
            } else {
                kept.append(argument)
            }
        }
        remaining = kept
        return taken
    }

    private static func isNegativeNumber(_ argument: String) -> Bool {
        argument.count > 1 && argument.dropFirst().first.map { ("0"..."9").contains($0) } == true
    }

    /// Fails on anything not consumed.
    func finish() throws(UsageError) {
        if let first = remaining.first {
            throw UsageError(description: "unknown argument '\(first)'")
        }
    }
}
