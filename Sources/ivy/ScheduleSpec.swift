// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy

/// One `ivy worker --schedule 'CRON NAME [JSON_ARGS]'`: a periodic call of task NAME.
struct ScheduleSpec {
    var cron: String
    var timeZone: TimeZone
    var name: String
    var arguments: [RawJSON]

    static let help = """
          --schedule 'CRON NAME [JSON_ARGS]'
                             call task NAME at every fire time of CRON (5 fields, 6 with
                             seconds first, or @hourly, @daily…), with the arguments of the JSON
                             array JSON_ARGS (default []): '*/5 * * * * testpackage.add [2,3]'.
                             Prefix TZ=ZONE to read CRON on ZONE's clock (default UTC):
                             'TZ=Europe/Prague 0 9 * * MON-FRI reports.daily'. Repeatable. Every
                             worker may carry the same schedules: one leads each and sends each
                             call once; ticks missed for over a minute while none ran are skipped
        """

    /// Parses the option's value.
    init(_ text: String) throws(CommandLineArguments.UsageError) {
        func refuse(_ why: String) -> CommandLineArguments.UsageError {
            .init(description: "--schedule '\(Console.printable(String(text.prefix(120))))': \(why)")
        }
        var tokens = text.split(whereSeparator: \.isWhitespace).map(String.init)[...]
        timeZone = .gmt
        if let first = tokens.first, let zone = first.split(separator: "=", maxSplits: 1).last,
            first.hasPrefix("TZ=") || first.hasPrefix("CRON_TZ=")
        {
            guard let parsed = TimeZone(identifier: String(zone)) else {
                throw refuse("unknown time zone '\(zone)'")
            }
            timeZone = parsed
            tokens = tokens.dropFirst()
        }
        // Cron fields never hold a dot; task names always do.
        let fields = tokens.prefix { !$0.contains(".") }
        guard !fields.isEmpty else { throw refuse("give a cron expression before the task's name") }
        cron = fields.joined(separator: " ")
        tokens = tokens.dropFirst(fields.count)
        guard let name = tokens.first else { throw refuse("name the task to call, as package.function") }
        self.name = name
        let rest = tokens.dropFirst().joined(separator: " ")
        if rest.isEmpty {
            arguments = []
        } else {
            guard rest.first == "[",
                let decoded = try? JSONDecoder().decode([RawJSON].self, from: Data(rest.utf8))
            else { throw refuse("the arguments must be one JSON array, such as [2,3]") }
            arguments = decoded
        }
        do { _ = try CronSchedule(cron, timeZone: timeZone) } catch {
            throw refuse(error.detail ?? "\(error)")
        }
    }

    /// Schedules the call in `registry`, on the queue of NAME where the registry has it, else
    /// on NAME's first segment (as `ivy call` does).
    func schedule(in registry: TaskRegistry) throws {
        let task = try CallCommand.untypedTask(name, queue: registry.queue(of: name)?.rawValue)
        do {
            try registry.schedule(task, cron: cron, timeZone: timeZone, arguments: arguments)
        } catch {
            throw CommandLineArguments.UsageError(description: "--schedule: \(error.detail ?? "\(error)")")
        }
    }
}
