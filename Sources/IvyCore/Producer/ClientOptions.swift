// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Settings of an ``IvyClient``.
///
/// Values are checked by ``validate()`` when the client is made, so options built from
/// configuration fail with a typed error rather than a trap.
public struct ClientOptions: Sendable {
    /// How long ``IvyClient/call(_:_:timeout:after:at:)`` and ``PendingResult/value`` wait by default.
    public var resultTimeout: Duration
    /// The base notification channel: the client subscribes to `<base>:<client id>`. Nil for
    /// ``ChannelName/base()``: `IVY_NOTIFICATION_CHANNEL_NAME`, else `ivy-notifier`.
    public var notificationChannel: ChannelName?
    /// Where the library writes what it has to say.
    public var logger: any IvyLogger
    /// Encryption of messages and notifications; nil for plaintext.
    public var encryption: MessageEncryption?

    public init(
        resultTimeout: Duration = .seconds(60), notificationChannel: ChannelName? = nil,
        logger: any IvyLogger = StderrLogger(), encryption: MessageEncryption? = .fromEnvironment()
    ) {
        self.encryption = encryption
        self.resultTimeout = resultTimeout
        self.notificationChannel = notificationChannel
        self.logger = logger
    }

    /// Checks every value; ``IvyClient`` does when it is made.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the first field out of range.
    public func validate() throws(IvyError) {
        try IvyError.check(
            "ClientOptions.resultTimeout", resultTimeout, in: .milliseconds(1)...(.seconds(366 * 86_400)))
        if notificationChannel == nil { _ = try ChannelName.base() }
        try encryption?.validate()
    }
}
