// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How a worker's periodic tasks are led (``WorkerOptions/schedule``).
public struct ScheduleOptions: Sendable, Hashable {
    /// How long a leader's lease lasts without renewal; it renews every third of this. A
    /// leader that dies is replaced within this.
    public var leaseDuration: Duration
    /// How late a tick may still be sent: a new leader sends the ticks of this window that its
    /// predecessor did not (a takeover), and ticks older than this, missed while no worker
    /// carried the schedule (a full outage), are skipped. Zero skips every tick not sent on
    /// time. A takeover comes within a lease and a third of the leader's last renewal, so a
    /// window shorter than that can lose the ticks of a takeover.
    public var catchUp: Duration

    public init(leaseDuration: Duration = .seconds(10), catchUp: Duration = .seconds(60)) {
        self.leaseDuration = leaseDuration
        self.catchUp = catchUp
    }

    /// Checks every value; a worker does before it starts.
    public func validate() throws(IvyError) {
        try IvyError.check(
            "ScheduleOptions.leaseDuration", leaseDuration, in: .milliseconds(300)...(.seconds(3_600)))
        try IvyError.check("ScheduleOptions.catchUp", catchUp, in: .zero...(.seconds(7 * 86_400)))
    }
}
