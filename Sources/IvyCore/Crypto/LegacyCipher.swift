// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// node ivy's message encryption, byte for byte: `$aes-256-cbc$<base64>`.
///
/// node's `crypto.createCipher('aes-256-cbc', sha512(password))`: the password's UTF-16 code
/// units truncated to bytes (node's `'binary'` encoding), SHA-512 of those (64 raw bytes), then
/// key and IV from `EVP_BytesToKey(MD5, no salt, 1 round)`. The IV is the same for every
/// message and nothing detects tampering: use it only to share queues with node ivy.
struct LegacyCipher: CustomReflectable {
    var customMirror: Mirror { Mirror(self, children: ["keys": "***"]) }

    static let prefix = Array("$aes-256-cbc$".utf8)

    private(set) var key: [UInt8]
    private(set) var iv: [UInt8]

    init(password: String) {
        var binary = password.utf16.map { UInt8(truncatingIfNeeded: $0) }
        var digest = OpenSSL.sha512(binary)
        (key, iv) = OpenSSL.bytesToKey(digest)
        OpenSSL.wipe(&binary)
        OpenSSL.wipe(&digest)
    }

    func encrypt(_ plaintext: [UInt8]) -> [UInt8] {
        let ciphertext = AES256CBC.encrypt(plaintext, key: key, iv: iv)
        return Self.prefix + Array(Data(ciphertext).base64EncodedString().utf8)
    }

    /// Decrypts a token's base64 part; nil when the padding is wrong (wrong key or damage).
    func decrypt(ciphertext: [UInt8]) -> [UInt8]? {
        try? AES256CBC.decrypt(ciphertext[...], key: key, iv: iv)
    }

    mutating func wipe() {
        OpenSSL.wipe(&key)
        OpenSSL.wipe(&iv)
    }
}
