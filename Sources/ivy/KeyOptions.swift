// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy

/// Where the encryption key comes from: a file, else `MESSAGES_ENCRYPTION_KEY`; never an argument.
struct KeyOptions {
    var encryption: MessageEncryption?

    static let help = """
          --key-file PATH    encryption key file: the first line is the key, further lines are
                             older keys still accepted for decryption (default: $MESSAGES_ENCRYPTION_KEY)
          --legacy-encryption   write node ivy's $aes-256-cbc$ format instead of $ivy-v1$
          --require-encryption  refuse (dead-letter) plaintext messages
        """

    init(_ arguments: inout CommandLineArguments, legacyFlag: String = "--legacy-encryption") throws {
        let keyFile = try arguments.option("--key-file")
        let format: MessageEncryption.Format = arguments.flag(legacyFlag) ? .legacy : .authenticated
        let requireEncryption = arguments.flag("--require-encryption")
        var keys: [String] = []
        if let keyFile {
            let text: String
            do { text = try String(contentsOfFile: keyFile, encoding: .utf8) } catch {
                throw CommandLineArguments.UsageError(description: "cannot read the key file \(keyFile)")
            }
            keys = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
            guard !keys.isEmpty else {
                throw CommandLineArguments.UsageError(description: "the key file \(keyFile) is empty")
            }
        } else if let key = ProcessInfo.processInfo.environment["MESSAGES_ENCRYPTION_KEY"], !key.isEmpty {
            keys = [key]
        }
        if requireEncryption && keys.isEmpty {
            throw CommandLineArguments.UsageError(
                description: "--require-encryption needs a key (--key-file or $MESSAGES_ENCRYPTION_KEY)")
        }
        encryption = keys.first.map {
            MessageEncryption(
                key: Secret($0), decryptionKeys: keys.dropFirst().map { Secret($0) }, format: format,
                requireEncryption: requireEncryption)
        }
    }
}
