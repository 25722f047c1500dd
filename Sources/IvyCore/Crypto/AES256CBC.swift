// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import COpenSSL

/// AES-256-CBC with PKCS#7 padding through OpenSSL's EVP interface.
enum AES256CBC {
    static let keySize = 32
    static let blockSize = 16

    struct Failure: Error {}

    static func encrypt(_ plaintext: [UInt8], key: [UInt8], iv: [UInt8]) -> [UInt8] {
        // Encryption with a valid key and IV cannot fail short of an allocation failure.
        guard let output = try? crypt(plaintext, key: key, iv: iv, encrypt: true) else {
            preconditionFailure("AES-256-CBC encryption failed")
        }
        return output
    }

    /// - Throws: ``Failure`` on bad padding (a wrong key or tampered data) or bad lengths.
    static func decrypt(_ ciphertext: ArraySlice<UInt8>, key: [UInt8], iv: [UInt8]) throws(Failure) -> [UInt8] {
        guard !ciphertext.isEmpty, ciphertext.count % blockSize == 0 else { throw Failure() }
        return try crypt(Array(ciphertext), key: key, iv: iv, encrypt: false)
    }

    private static func crypt(_ input: [UInt8], key: [UInt8], iv: [UInt8], encrypt: Bool) throws(Failure) -> [UInt8] {
        precondition(key.count == keySize && iv.count == blockSize, "AES-256-CBC needs a 32-byte key and a 16-byte IV")
        guard let context = EVP_CIPHER_CTX_new() else { preconditionFailure("out of memory") }
        defer { EVP_CIPHER_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: input.count + blockSize)
        var written: Int32 = 0
        var final: Int32 = 0
        let ok = key.withUnsafeBufferPointer { key in
            iv.withUnsafeBufferPointer { iv in
                output.withUnsafeMutableBufferPointer { out in
                    input.withUnsafeBufferPointer { input -> Bool in
                        guard EVP_CipherInit_ex(context, EVP_aes_256_cbc(), nil, key.baseAddress, iv.baseAddress, encrypt ? 1 : 0) == 1,
                            EVP_CipherUpdate(context, out.baseAddress, &written, input.baseAddress, Int32(input.count)) == 1,
                            EVP_CipherFinal_ex(context, out.baseAddress! + Int(written), &final) == 1
                        else { return false }
                        return true
                    }
                }
            }
        }
        ERR_clear_error()
        guard ok else {
            OPENSSL_cleanse(&output, output.count)
            throw Failure()
        }
        output.removeLast(output.count - Int(written + final))
        return output
    }
}

/// Small OpenSSL helpers: digests, MACs, key derivation, randomness, wiping.
enum OpenSSL {
    static func sha512(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 64)
        _ = bytes.withUnsafeBufferPointer { SHA512($0.baseAddress, $0.count, &digest) }
        return digest
    }

    static func hmacSHA256(key: [UInt8], _ parts: [ArraySlice<UInt8>]) -> [UInt8] {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { preconditionFailure("HMAC unavailable") }
        defer { EVP_MAC_free(mac) }
        guard let context = EVP_MAC_CTX_new(mac) else { preconditionFailure("out of memory") }
        defer { EVP_MAC_CTX_free(context) }
        var digestName = Array("SHA256".utf8CString)
        var tag = [UInt8](repeating: 0, count: 32)
        var length = 0
        let ok = digestName.withUnsafeMutableBufferPointer { name -> Bool in
            var parameters = [
                OSSL_PARAM_construct_utf8_string("digest", name.baseAddress, 0), OSSL_PARAM_construct_end(),
            ]
            guard key.withUnsafeBufferPointer({ EVP_MAC_init(context, $0.baseAddress, $0.count, &parameters) }) == 1
            else { return false }
            for part in parts {
                guard part.withUnsafeBufferPointer({ EVP_MAC_update(context, $0.baseAddress, $0.count) }) == 1 else {
                    return false
                }
            }
            return EVP_MAC_final(context, &tag, &length, tag.count) == 1
        }
        precondition(ok && length == 32, "HMAC-SHA256 failed")
        return tag
    }

    static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        let ok = password.withUnsafeBufferPointer { password in
            password.withMemoryRebound(to: CChar.self) { password in
                PKCS5_PBKDF2_HMAC(
                    password.baseAddress, Int32(password.count), salt, Int32(salt.count), Int32(iterations), EVP_sha256(),
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

    static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&bytes, Int32(count)) == 1, "no randomness available")
        return bytes
    }

    /// Compares in time that depends only on the length.
    static func constantTimeEqual(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBufferPointer { a in CRYPTO_memcmp(a.baseAddress, b, b.count) == 0 }
    }

    static func wipe(_ bytes: inout [UInt8]) {
        OPENSSL_cleanse(&bytes, bytes.count)
    }
}
