// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Testing

@testable import IvyCore

/// Both token formats, checked against vectors made by node (legacy) and by Python's hashlib
/// and hmac with the openssl command line (authenticated).
@Suite("Message encryption")
struct EncryptionTests {
    static let key: Secret = "correct horse battery staple"
    static let message = Array(#"{"name":"testpackage.add","options":{},"args":[2,3]}"#.utf8)

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func openError(_ encryption: MessageEncryption, _ token: [UInt8]) -> IvyError? {
        do {
            _ = try encryption.open(token)
            return nil
        } catch {
            return error
        }
    }

    @Test func ivysOwnVectorDecryptsAndIsReproducedByteForByte() throws {
        let encryption = MessageEncryption(key: "pass", format: .legacy)
        let token = bytes("$aes-256-cbc$DWKO1589bRhzNrgivtoXyw==")
        #expect(try encryption.plaintext(of: token) == bytes("Hello Crypto"))
        #expect(encryption.token(for: bytes("Hello Crypto")) == token)
    }

    @Test func legacyMatchesNodeForANonLatin1Password() throws {
        // node: createCipher('aes-256-cbc', sha512(update(password, 'binary'))), node 20.
        let node = bytes(
            "$aes-256-cbc$sVSh5RkoOwjsGFpjxuZOb9HjzK5R0bTDmRyS2grywmG2SYIg+EICCojg+lc8pYUe+X5jLzZQG+QxQs6dM+fFIw=="
        )
        let encryption = MessageEncryption(key: "pässwörd✓€", format: .legacy)
        #expect(try encryption.open(node) == Self.message)
        #expect(encryption.seal(Self.message, route: nil) == node)
    }

    @Test func legacyMatchesNodeForAnEmptyPlaintext() throws {
        let encryption = MessageEncryption(key: "secret", format: .legacy)
        #expect(encryption.token(for: []) == bytes("$aes-256-cbc$qMS5D7YYR+df6FF24VJf3w=="))
        #expect(try encryption.plaintext(of: bytes("$aes-256-cbc$qMS5D7YYR+df6FF24VJf3w==")) == [])
    }

    static let authenticatedVector =
        "$ivy-v1$eyJpZCI6InAtMSIsIm5vdGlmeSI6Iml2eS1ub3RpZmllcjpwIn0$AAECAwQFBgcICQoLDA0OD00vpWUjq9TpD4rAngOFEaw3xo/Rs/3LALG36Y+N7gNlX2giVJAdPPBWfHHL7z2SdPT4IxANaPuWVOamlFXwnhvw6J0l39p+cNyxKzbnV1aYMdVhViNmUSiTRpE/gQPt+A=="

    @Test func authenticatedFormatMatchesTheDocumentedVector() throws {
        let cipher = AuthenticatedCipher(password: Self.key.exposedValue)
        let route = bytes("eyJpZCI6InAtMSIsIm5vdGlmeSI6Iml2eS1ub3RpZmllcjpwIn0")
        let token = cipher.encrypt(Self.message, route: route, iv: Array(0..<16))
        #expect(String(decoding: token, as: UTF8.self) == Self.authenticatedVector)
        let encryption = MessageEncryption(key: Self.key)
        #expect(try encryption.open(bytes(Self.authenticatedVector)) == Self.message)
        #expect(
            MessageEncryption.route(of: bytes(Self.authenticatedVector))
                == .init(id: "p-1", notify: "ivy-notifier:p"))
        #expect(
            encryption.seal(Self.message, route: .init(id: "p-1", notify: "ivy-notifier:p")).starts(
                with: bytes("$ivy-v1$" + String(decoding: route, as: UTF8.self) + "$")))
    }

    @Test(arguments: [0, 1, 15, 16, 17, 1000, 64 * 1024])
    func roundTripsInBothFormats(size: Int) throws {
        let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for format in [MessageEncryption.Format.authenticated, .legacy] {
            let encryption = MessageEncryption(key: Self.key, format: format)
            let token = encryption.token(for: plaintext)
            #expect(token.first == UInt8(ascii: "$"))
            #expect(try encryption.plaintext(of: token) == plaintext)
        }
    }

    @Test func unicodePlaintextSurvives() throws {
        let text = #"{"name":"a.b","args":["héllo ✓ 😀 \u0000"]}"#
        let encryption = MessageEncryption(key: "κλειδί 🔑")
        #expect(try encryption.open(encryption.seal(bytes(text), route: nil)) == bytes(text))
    }

    @Test func everyAuthenticatedTokenHasItsOwnIV() {
        let encryption = MessageEncryption(key: Self.key)
        let tokens = Set((0..<20).map { _ in encryption.seal(Self.message, route: nil) })
        #expect(tokens.count == 20)
    }

    /// Flips one bit of the sealed part at `offset` (negative: from the end) and re-encodes.
    private func tampered(_ token: String, at offset: Int) -> [UInt8] {
        let separator = token.lastIndex(of: "$")!
        var sealed = Array(Data(base64Encoded: String(token[token.index(after: separator)...]))!)
        let index = offset >= 0 ? offset : sealed.count + offset
        sealed[index] ^= 0x01
        return bytes(String(token[...separator]) + Data(sealed).base64EncodedString())
    }

    @Test(arguments: [("IV", 3), ("ciphertext", 20), ("MAC", -5)])
    func tamperingIsDetected(part: String, offset: Int) {
        let encryption = MessageEncryption(key: Self.key)
        let error = openError(encryption, tampered(Self.authenticatedVector, at: offset))
        #expect(error?.code == .decryptionFailed, "tampered \(part) was accepted")
    }

    @Test func aTamperedRouteIsDetected() {
        let encryption = MessageEncryption(key: Self.key)
        let forged = Self.authenticatedVector.replacingOccurrences(
            of: "eyJpZCI6InAtMSIs", with: "eyJpZCI6InAtMiIs")
        #expect(openError(encryption, bytes(forged))?.code == .decryptionFailed)
    }

    @Test func truncatedTokensAreRejected() {
        let encryption = MessageEncryption(key: Self.key)
        let vector = Self.authenticatedVector
        let truncations = [
            String(vector.dropLast(4)), String(vector.dropLast(60)), "$ivy-v1$", "$ivy-v1$$", "$ivy-v1$$AAAA",
            "$aes-256-cbc$", "$aes-256-cbc$DWKO1589bRhzNrgi",
        ]
        for token in truncations {
            #expect(openError(encryption, bytes(token))?.code == .decryptionFailed, "accepted \(token)")
        }
    }

    @Test func badBase64AndUnknownFormatsAreRejected() {
        let encryption = MessageEncryption(key: Self.key)
        for token in ["$ivy-v1$$!!!not base64!!!", "$aes-256-cbc$@@@@", "$rot13$uryyb", "$"] {
            let error = openError(encryption, bytes(token))
            #expect(error?.code == .decryptionFailed, "accepted \(token)")
        }
        #expect(openError(encryption, bytes("$rot13$uryyb"))?.detail == "unknown encryption format")
    }

    @Test func aWrongKeyIsATypedErrorThatDoesNotShowAnyKey() {
        let writer = MessageEncryption(key: "the-right-key")
        for format in [MessageEncryption.Format.authenticated, .legacy] {
            let token = MessageEncryption(key: "the-right-key", format: format).seal(Self.message, route: nil)
            let error = openError(MessageEncryption(key: "the-wrong-key"), token)
            #expect(error?.code == .decryptionFailed)
            let text = "\(String(describing: error)) \(String(reflecting: error))"
            #expect(!text.contains("the-wrong-key") && !text.contains("the-right-key"))
        }
        _ = writer
    }

    @Test func rotationOpensOldMessagesAndSealsWithTheNewKey() throws {
        let old = MessageEncryption(key: "key-2025")
        let rotated = MessageEncryption(key: "key-2026", decryptionKeys: ["key-2025"])
        let oldToken = old.seal(Self.message, route: nil)
        let legacyOldToken = MessageEncryption(key: "key-2025", format: .legacy).seal(
            Self.message, route: nil)
        #expect(try rotated.open(oldToken) == Self.message)
        #expect(try rotated.open(legacyOldToken) == Self.message)
        let newToken = rotated.seal(Self.message, route: nil)
        #expect(try MessageEncryption(key: "key-2026").open(newToken) == Self.message)
        #expect(openError(old, newToken)?.code == .decryptionFailed)
    }

    @Test func requireEncryptionRefusesPlaintext() throws {
        let strict = MessageEncryption(key: Self.key, requireEncryption: true)
        #expect(openError(strict, Self.message)?.code == .encryptionRequired)
        let lenient = MessageEncryption(key: Self.key)
        #expect(try lenient.open(Self.message) == Self.message)
    }

    @Test func secretsNeverPrint() {
        let secret = Secret("hunter2")
        #expect("\(secret)" == "***")
        #expect(String(reflecting: secret) == "Secret(***)")
        #expect(!"\(MessageEncryption(key: secret))".contains("hunter2"))
    }

    @Test func theEnvironmentKeyIsReadAsNodeIvyDoes() throws {
        #expect(MessageEncryption.fromEnvironment([:]) == nil)
        #expect(MessageEncryption.fromEnvironment(["MESSAGES_ENCRYPTION_KEY": ""]) == nil)
        let encryption = try #require(
            MessageEncryption.fromEnvironment(["MESSAGES_ENCRYPTION_KEY": "pass"], format: .legacy))
        #expect(
            encryption.token(for: bytes("Hello Crypto")) == bytes("$aes-256-cbc$DWKO1589bRhzNrgivtoXyw=="))
    }

    @Test func withAKeyOnlySealedResultsAndUndecryptableNoticesAreAccepted() throws {
        let codec = MessageCodec(encryption: MessageEncryption(key: Self.key))
        let forged = ResultNotification(
            id: "p-1", name: "testpackage.add", args: bytes("[1,2]"), queue: "q", attempt: 1,
            outcome: .success(result: bytes("[1000]")))
        let error = #expect(throws: IvyError.self) { try codec.decodeNotification(forged.encoded()) }
        #expect(error?.code == .encryptionRequired)
        let notice = ResultNotification(
            id: "p-1", name: "", args: bytes("[]"), queue: "q", attempt: 1,
            outcome: .failure(.init(name: "DecryptionFailed", message: "wrong key", retryable: false)))
        #expect(try codec.decodeNotification(notice.encoded()) == notice)
        let sealed = codec.encode(forged, answering: .authenticated)
        #expect(try codec.decodeNotification(sealed) == forged)
    }

    @Test func theLegacyFormatCanBeRefused() throws {
        let token = MessageEncryption(key: "pass", format: .legacy).seal(Self.message, route: nil)
        let strict = MessageEncryption(key: "pass", acceptsLegacyFormat: false)
        #expect(openError(strict, token)?.code == .decryptionFailed)
        #expect(try MessageEncryption(key: "pass").open(token) == Self.message)
    }

    @Test func keysDoNotShowInDescriptionsOrMirrors() {
        let encryption = MessageEncryption(key: "hunter2-key")
        var dumped = ""
        dump(encryption, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect(!"\(encryption)".contains("hunter2"))
    }

    /// PROTOCOL.md §6.2: the route must name the call the plaintext is.
    @Test func aSealedCallWhoseRouteNamesAnotherCallIsMalformed() throws {
        let encryption = MessageEncryption(key: Self.key)
        let codec = MessageCodec(encryption: encryption)
        let call = TaskMessage(name: "t.add", args: Array("[1,2]".utf8), id: "p-1", notify: "ivy-notifier:p")
        let plaintext = call.encoded()
        // As a producer seals it: opens.
        #expect(try codec.decodeCall(codec.encode(call)).message == call)
        let wrongRoutes: [MessageEncryption.Route?] = [
            .init(id: "p-2", notify: "ivy-notifier:p"), .init(id: "p-1", notify: "ivy-notifier:q"),
            .init(id: "p-1", notify: nil), nil,
        ]
        for route in wrongRoutes {
            let error = #expect(throws: IvyError.self) {
                _ = try codec.decodeCall(encryption.seal(plaintext, route: route))
            }
            #expect(error?.code == .malformedMessage)
            #expect(error?.detail?.contains("route") == true)
        }
        // A message without id (node style) has an empty route, and a route on it is refused.
        let node = TaskMessage(name: "t.add", args: Array("[1,2]".utf8))
        #expect(try codec.decodeCall(encryption.seal(node.encoded(), route: nil)).message == node)
        #expect(throws: IvyError.self) {
            _ = try codec.decodeCall(encryption.seal(node.encoded(), route: .init(id: "x")))
        }
    }
}

/// A producer that cannot read a result for a call it waits for ends that call at once.
struct UnreadableResultTests {
    private func producer(key: String) async throws -> (IvyClient, MemoryNotifier, TaskDefinition<Int, Int>) {
        let registry = TaskRegistry()
        let add = try registry.register("t.one", queue: "nobody-serves-this") { (n: Int) in n }
        let notifier = MemoryNotifier()
        // The client's connection is never closed: these memory objects need no closing.
        let ivy = try await IvyClient(
            registry: registry, connection: IvyConnection(backend: MemoryQueueBackend(), notifier: notifier),
            options: ClientOptions(
                resultTimeout: .seconds(600), logger: SilentLogger(),
                encryption: MessageEncryption(key: Secret(key))))
        return (ivy, notifier, add)
    }

    @Test func aPlaintextResultToASealedCallEndsItWithEncryptionRequired() async throws {
        let (ivy, notifier, task) = try await producer(key: "k")
        let pending = try await ivy.delayedCall(task, 1)
        let forged = ResultNotification(
            id: pending.taskID, name: "t.one", args: Array("[1]".utf8), queue: "q", attempt: 1,
            outcome: .success(result: Array("[666]".utf8)))
        try notifier.publish(forged.encoded(), to: ivy.notificationChannel)
        // Not the forged value, and not after the ten-minute timeout: now, with the reason.
        let error = await #expect(throws: IvyError.self) { _ = try await pending.value }
        #expect(error?.code == .encryptionRequired)
        await ivy.close()
    }

    @Test func aResultSealedWithAnotherKeyEndsTheCallWithDecryptionFailed() async throws {
        let (ivy, notifier, task) = try await producer(key: "mine")
        let pending = try await ivy.delayedCall(task, 1)
        let other = MessageCodec(encryption: MessageEncryption(key: "theirs"))
        let result = ResultNotification(
            id: pending.taskID, name: "t.one", args: Array("[1]".utf8), queue: "q", attempt: 1,
            outcome: .success(result: Array("[1]".utf8)))
        try notifier.publish(other.encode(result, answering: .authenticated), to: ivy.notificationChannel)
        let error = await #expect(throws: IvyError.self) { _ = try await pending.value }
        #expect(error?.code == .decryptionFailed)
        await ivy.close()
    }
}
