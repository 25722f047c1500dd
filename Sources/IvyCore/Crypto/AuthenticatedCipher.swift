// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// Ivy's default message encryption: AES-256-CBC with a random IV, then HMAC-SHA256
/// (encrypt-then-MAC), in the token `$ivy-v1$<route>$<base64(iv ‖ ciphertext ‖ tag)>`.
///
/// - Keys: PBKDF2-HMAC-SHA256(password as UTF-8, salt `ivy-message-encryption-v1`,
///   ``iterations`` rounds, 64 bytes); the first 32 bytes encrypt, the last 32 authenticate.
/// - Tag: HMAC-SHA256 over `0x01 ‖ route ‖ 0x00 ‖ iv ‖ ciphertext`.
/// - Route: base64url, without padding, of the task id and notification channel as
///   `{"id":…,"notify":…}`, or empty. It is readable without the key, so a worker holding the
///   wrong key can still tell the caller; the tag covers it, so it cannot be altered unseen.
struct AuthenticatedCipher: CustomReflectable {
    var customMirror: Mirror { Mirror(self, children: ["keys": "***"]) }

    static let prefix = Array("$ivy-v1$".utf8)
    static let version: UInt8 = 1
    static let iterations = 100_000
    static let salt = Array("ivy-message-encryption-v1".utf8)
    static let tagSize = 32

    private(set) var encryptionKey: [UInt8]
    private(set) var macKey: [UInt8]

    init(password: String) {
        var bytes = Array(password.utf8)
        var derived = OpenSSL.pbkdf2SHA256(
            password: bytes, salt: Self.salt, iterations: Self.iterations, count: 64)
        encryptionKey = Array(derived[0..<32])
        macKey = Array(derived[32..<64])
        OpenSSL.wipe(&derived)
        OpenSSL.wipe(&bytes)
    }

    /// - Parameter iv: A fixed IV, for test vectors only; random by default.
    func encrypt(_ plaintext: [UInt8], route: [UInt8], iv: [UInt8] = OpenSSL.randomBytes(AES256CBC.blockSize))
        -> [UInt8]
    {
        let ciphertext = AES256CBC.encrypt(plaintext, key: encryptionKey, iv: iv)
        let tag = tag(route: route[...], iv: iv[...], ciphertext: ciphertext[...])
        return Self.prefix + route + [UInt8(ascii: "$")]
            + Array(Data(iv + ciphertext + tag).base64EncodedString().utf8)
    }

    /// Checks the tag, then decrypts; nil when this key did not produce the token.
    func decrypt(route: ArraySlice<UInt8>, sealed: [UInt8]) -> [UInt8]? {
        let iv = sealed[0..<AES256CBC.blockSize]
        let ciphertext = sealed[AES256CBC.blockSize..<(sealed.count - Self.tagSize)]
        let tag = sealed[(sealed.count - Self.tagSize)...]
        guard OpenSSL.constantTimeEqual(tag, self.tag(route: route, iv: iv, ciphertext: ciphertext)) else {
            return nil
        }
        return try? AES256CBC.decrypt(ciphertext, key: encryptionKey, iv: Array(iv))
    }

    private func tag(route: ArraySlice<UInt8>, iv: ArraySlice<UInt8>, ciphertext: ArraySlice<UInt8>)
        -> [UInt8]
    {
        OpenSSL.hmacSHA256(key: macKey, [[Self.version][...], route, [0][...], iv, ciphertext])
    }

    mutating func wipe() {
        OpenSSL.wipe(&encryptionKey)
        OpenSSL.wipe(&macKey)
    }
}
