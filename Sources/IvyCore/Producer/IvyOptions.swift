// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Settings of an ``Ivy`` producer/worker.
public struct IvyOptions: Sendable {
    /// How long ``Ivy/call(_:_:timeout:)`` and ``PendingResult/value`` wait by default.
    public var resultTimeout: Duration
    /// The base notification channel: a producer subscribes to `<base>:<producer id>`, and a
    /// worker publishes results of messages that name no channel (node ivy's) on the base.
    public var notificationChannel: String
    /// Where the library writes what it has to say.
    public var logger: any IvyLogger
    /// Encryption of messages and notifications; nil for plaintext.
    public var encryption: MessageEncryption?

    /// The base channel when none is given: `IVY_NOTIFICATION_CHANNEL_NAME`, else `ivy-notifier`.
    public static var defaultNotificationChannel: String {
        let name = ProcessInfo.processInfo.environment["IVY_NOTIFICATION_CHANNEL_NAME"] ?? ""
        return name.isEmpty ? "ivy-notifier" : name
    }

    public init(
        resultTimeout: Duration = .seconds(60), notificationChannel: String? = nil,
        logger: any IvyLogger = StderrLogger(), encryption: MessageEncryption? = .fromEnvironment()
    ) {
        self.encryption = encryption
        self.resultTimeout = resultTimeout
        self.notificationChannel = notificationChannel ?? Self.defaultNotificationChannel
        self.logger = logger
    }

    /// Checks every value; ``Ivy`` does when it is made.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the first field out of range.
    public func validate() throws(IvyError) {
        try IvyError.check(
            "IvyOptions.resultTimeout", resultTimeout, in: .milliseconds(1)...(.seconds(366 * 86_400)))
        guard !notificationChannel.isEmpty else {
            throw IvyError.invalidConfiguration(
                "IvyOptions.notificationChannel", mustBe: "a non-empty name", got: "\"\"")
        }
        try encryption?.validate()
    }
}
