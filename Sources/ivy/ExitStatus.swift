// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy

/// The exit statuses of `ivy`, as the README and `ivy --help` document them.
enum ExitStatus: Int32 {
    case success = 0
    /// A task failed, or its result did not come: the remote side's failure.
    case taskFailed = 1
    /// The command line is wrong.
    case usage = 2
    /// A broker could not be reached or refused us, or a URL or setting is wrong.
    case unavailable = 3

    static let help = """
        exit status:
          0  success
          1  the task or the remote side failed (a remote error, no result in time, errors in a bench)
          2  usage: an unknown command or option, a bad value
          3  connection or configuration: a broker unreachable or refusing, a bad URL or setting
        """

    /// The status an error ends the command with.
    static func of(_ error: any Error) -> ExitStatus {
        switch error {
        case is CommandLineArguments.UsageError: return .usage
        case let error as IvyError where unavailableCodes.contains(error.code): return .unavailable
        default: return .taskFailed
        }
    }

    private static let unavailableCodes: Set<IvyError.Code> = [
        .connectionFailed, .commandFailed, .invalidURL, .unsupportedBackend, .invalidConfiguration, .closed,
    ]
}
