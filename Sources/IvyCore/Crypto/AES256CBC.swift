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
    static func decrypt(_ ciphertext: ArraySlice<UInt8>, key: [UInt8], iv: [UInt8]) throws(Failure) -> [UInt8]
    {
        guard !ciphertext.isEmpty, ciphertext.count % blockSize == 0 else { throw Failure() }
        return try crypt(Array(ciphertext), key: key, iv: iv, encrypt: false)
    }

    private static func crypt(_ input: [UInt8], key: [UInt8], iv: [UInt8], encrypt: Bool) throws(Failure)
        -> [UInt8]
    {
        precondition(
            key.count == keySize && iv.count == blockSize, "AES-256-CBC needs a 32-byte key and a 16-byte IV")
        guard let context = EVP_CIPHER_CTX_new() else { preconditionFailure("out of memory") }
        defer { EVP_CIPHER_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: input.count + blockSize)
        var written: Int32 = 0
        var final: Int32 = 0
        let ok = key.withUnsafeBufferPointer { key in
            iv.withUnsafeBufferPointer { iv in
                output.withUnsafeMutableBufferPointer { out in
                    input.withUnsafeBufferPointer { input -> Bool in
                        guard
                            EVP_CipherInit_ex(
                                context, EVP_aes_256_cbc(), nil, key.baseAddress, iv.baseAddress,
                                encrypt ? 1 : 0) == 1,
                            EVP_CipherUpdate(
                                context, out.baseAddress, &written, input.baseAddress, Int32(input.count))
                                == 1,
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
