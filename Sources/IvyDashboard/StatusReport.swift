// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore

/// A call's status as the dashboard's lookup shows it (`GET /api/tasks/ID`).
struct StatusReport: Encodable, Sendable {
    var id: String
    var state: String
    var task: String?
    var queue: String?
    var attempt: Int
    var worker: String?
    var updatedAt: Date?
    var runAt: Date?
    var reason: String?
    /// The result's JSON text, for a call that succeeded with one.
    var result: String?
    var cancelRequested: Bool

    init(_ status: TaskStatus) {
        id = status.id
        state = status.state.rawValue
        task = status.taskName
        queue = status.queue
        attempt = status.attempt
        worker = status.worker
        updatedAt = status.updatedAt
        runAt = status.runAt
        reason = status.reason
        result = status.result?.text
        cancelRequested = status.cancelRequested
    }
}
