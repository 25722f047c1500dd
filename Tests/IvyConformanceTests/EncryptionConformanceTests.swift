// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

/// Encryption end to end: a producer and a worker, each with its own keys, on one backend.
@Suite("Encrypted messages")
struct EncryptionConformanceTests {
    /// Runs `body` with a producer and a separate worker sharing one backend and notifier.
    private func withPair(
        _ kind: ConformanceBackend, producer producerEncryption: MessageEncryption?,
        worker workerEncryption: MessageEncryption?,
        _ body: (IvyClient, TestPackage, any InspectableQueueBackend, QueueName, any Notifier) async throws ->
            Void
    ) async throws {
        let (backend, notifier) = try await kind.open()
        let connection = IvyConnection(backend: backend, notifier: notifier)
        let queue = freshQueue("enc")
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let producer = try await IvyClient(
            registry: registry, connection: connection,
            options: ClientOptions(
                resultTimeout: .seconds(60), logger: SilentLogger(), encryption: producerEncryption))
        let worker = try IvyWorker(
            registry: registry, connection: connection,
            options: WorkerOptions(
                queues: [queue], concurrency: 4, logger: SilentLogger(), encryption: workerEncryption))
        let serving = Task { try await worker.run() }
        var failure: (any Error)?
        do { try await body(producer, tasks, backend, queue, notifier) } catch { failure = error }
        serving.cancel()
        _ = try? await serving.value
        await producer.close()
        await worker.close()
        await connection.close()
        if let failure { throw failure }
    }

    @Test(arguments: ConformanceBackend.all)
    func messagesOnTheQueueAreEncryptedAndCallsWork(_ kind: ConformanceBackend) async throws {
        let encryption = MessageEncryption(key: "queue-key")
        try await withPair(kind, producer: encryption, worker: encryption) { producer, tasks, _, _, _ in
            let echoed = try await producer.call(tasks.echo, "secret payload")
            #expect(echoed == "secret payload")
            let factorial = try await producer.call(tasks.factorial, 6)
            #expect(factorial == 720)
        }
        // What a broker holds: a token, never the payload.
        let (backend, notifier) = try await kind.open()
        let registry = TaskRegistry()
        let queue = freshQueue("enc")
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let connection = IvyConnection(backend: backend, notifier: notifier)
        let producer = try await IvyClient(
            registry: registry, connection: connection,
            options: ClientOptions(logger: SilentLogger(), encryption: encryption))
        try await producer.enqueue(tasks.echo, "secret payload")
        let held = try #require(try await backend.peek(queue, count: 1).first)
        #expect(held.body.starts(with: Array("$ivy-v1$".utf8)))
        #expect(!String(decoding: held.body, as: UTF8.self).contains("secret payload"))
        await producer.close()
        await connection.close()
    }

    @Test(arguments: ConformanceBackend.all)
    func aWorkerWithTheWrongKeyDeadLettersTheMessageAndTheCallerIsTold(_ kind: ConformanceBackend)
        async throws
    {
        try await withPair(
            kind, producer: MessageEncryption(key: "producer-key"),
            worker: MessageEncryption(key: "worker-key")
        ) { producer, tasks, backend, queue, _ in
            let error = await #expect(throws: RemoteTaskError.self) {
                try await producer.call(tasks.add, 1, 2)
            }
            #expect(error?.name == "DecryptionFailed")
            #expect(error?.taskName == "testpackage.add")
            let letters = try await backend.deadLetters(of: queue, count: 10)
            #expect(letters.count == 1)
            let reason = letters.first?.reason ?? ""
            #expect(reason.contains("decryptionFailed"))
            #expect(!reason.contains("producer-key") && !reason.contains("worker-key"))
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aWorkerThatRequiresEncryptionRefusesPlaintext(_ kind: ConformanceBackend) async throws {
        try await withPair(
            kind, producer: nil, worker: MessageEncryption(key: "worker-key", requireEncryption: true)
        ) { producer, tasks, backend, queue, _ in
            let error = await #expect(throws: RemoteTaskError.self) {
                try await producer.call(tasks.add, 1, 2)
            }
            #expect(error?.name == "EncryptionRequired")
            let letters = try await backend.deadLetters(of: queue, count: 10)
            #expect(letters.first?.reason.contains("encryptionRequired") == true)
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aPlaintextCallToAKeyedWorkerIsAnsweredInPlaintext(_ kind: ConformanceBackend) async throws {
        // The worker has a key but does not require encryption: the caller, who has none, must
        // still read its answer, so the answer comes in the form the call came in.
        try await withPair(kind, producer: nil, worker: MessageEncryption(key: "worker-key")) {
            producer, tasks, _, _, _ in
            let sum = try await producer.call(tasks.add, 40, 2)
            #expect(sum == 42)
            let error = await #expect(throws: RemoteTaskError.self) {
                try await producer.call(tasks.factorial, -1)
            }
            #expect(error?.name == "ValueError")
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func aNodeIvyFormatProducerIsServedAndAnsweredInPlaintextAsNodeIvyReadsIt(_ kind: ConformanceBackend)
        async throws
    {
        try await withPair(
            kind, producer: MessageEncryption(key: "shared", format: .legacy),
            worker: MessageEncryption(key: "shared")
        ) { producer, tasks, _, _, notifier in
            let payloads = Locked<[[UInt8]]>([])
            let subscription = try await notifier.subscribe(to: producer.notificationChannel) { payload in
                payloads.withLock { $0.append(payload) }
            }
            let sum = try await producer.call(tasks.add, 20, 22)
            #expect(sum == 42)
            try await withDeadline(.seconds(10), "the notification to reach the second subscriber") {
                while payloads.value.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(
                payloads.value.first?.first == UInt8(ascii: "{"),
                "node ivy reads plaintext notifications only")
            subscription.cancel()
        }
    }

    @Test(arguments: ConformanceBackend.all)
    func keysCanBeRotatedWhileCallsFlow(_ kind: ConformanceBackend) async throws {
        // Mid-rotation: the producer still seals with the old key, the worker with the new one;
        // each accepts the other's.
        try await withPair(
            kind, producer: MessageEncryption(key: "old", decryptionKeys: ["new"]),
            worker: MessageEncryption(key: "new", decryptionKeys: ["old"])
        ) { producer, tasks, _, _, _ in
            let echoed = try await producer.call(tasks.echo, "rotating")
            #expect(echoed == "rotating")
        }
    }

    @Test func theURLInitialisersTakeAnEncryptionKey() async throws {
        let registry = TaskRegistry()
        let queue = freshQueue("enc")
        _ = try TestPackage.register(in: registry, queue: queue)
        // memory:// URLs give each its own queue: the key is checked in their options.
        let client = try await IvyClient(
            registry: registry, queue: .url("memory://"), notifier: .url("memory://"), encryptionKey: "k",
            options: ClientOptions(logger: SilentLogger(), encryption: nil))
        let worker = try await IvyWorker(
            registry: registry, queue: .url("memory://"), notifier: .url("memory://"), encryptionKey: "k",
            options: WorkerOptions(logger: SilentLogger(), encryption: nil))
        #expect(client.options.encryption != nil)
        #expect(worker.options.encryption != nil)
        await client.close()
        await worker.close()
    }
}
