// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import COpenSSL

/// Small OpenSSL helpers: digests, MACs, key derivation, randomness, wiping.
package enum OpenSSL {
    /// SHA-1 as 40 lowercase hex digits (what Redis names a script by); not for security.
    package static func sha1Hex(_ bytes: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: 20)
        _ = bytes.withUnsafeBufferPointer { SHA1($0.baseAddress, $0.count, &digest) }
        let digits = Array("0123456789abcdef".utf8)
        return String(
            decoding: digest.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    static func sha512(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 64)
        _ = bytes.withUnsafeBufferPointer { SHA512($0.baseAddress, $0.count, &digest) }
        return digest
    }

    static func hmacSHA256(key: [UInt8], _ parts: [ArraySlice<UInt8>]) -> [UInt8] {
        var message = parts.reduce(into: [UInt8]()) { $0.append(contentsOf: $1) }
        defer { wipe(&message) }
        var tag = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = key.withUnsafeBufferPointer { key in
            HMAC(EVP_sha256(), key.baseAddress, Int32(key.count), message, message.count, &tag, &length)
        }
        precondition(result != nil && length == 32, "HMAC-SHA256 failed")
        return tag
    }

    static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        let ok = password.withUnsafeBufferPointer { password in
            password.withMemoryRebound(to: CChar.self) { password in
                PKCS5_PBKDF2_HMAC(
                    password.baseAddress, Int32(password.count), salt, Int32(salt.count), Int32(iterations),
                    EVP_sha256(),
                    Int32(count), &output)
            }
        }
        precondition(ok == 1, "PBKDF2 failed")
        return output
    }

    /// OpenSSL's `EVP_BytesToKey` with MD5, no salt, one round: what node's `createCipher` uses.
    static func bytesToKey(_ password: [UInt8]) -> (key: [UInt8], iv: [UInt8]) {
        var key = [UInt8](repeating: 0, count: AES256CBC.keySize)
        var iv = [UInt8](repeating: 0, count: AES256CBC.blockSize)
        let length = password.withUnsafeBufferPointer {
            EVP_BytesToKey(EVP_aes_256_cbc(), EVP_md5(), nil, $0.baseAddress, Int32($0.count), 1, &key, &iv)
        }
        precondition(length == AES256CBC.keySize, "EVP_BytesToKey failed")
        return (key, iv)
    }

    /// Fills `buffer` from OpenSSL's generator: unguessable, with no system call per value.
    static func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let start = buffer.baseAddress else { return }
        let ok = RAND_bytes(start.assumingMemoryBound(to: UInt8.self), Int32(buffer.count))
        precondition(ok == 1, "no randomness available")
    }

    package static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes(fillRandom)
        return bytes
    }

    static func randomUInt64() -> UInt64 {
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value, fillRandom)
        return value
    }

    /// Compares in time that depends only on the length.
    package static func constantTimeEqual(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBufferPointer { a in CRYPTO_memcmp(a.baseAddress, b, b.count) == 0 }
    }

    static func wipe(_ bytes: inout [UInt8]) {
        OPENSSL_cleanse(&bytes, bytes.count)
    }
}
