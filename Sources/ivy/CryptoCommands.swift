// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy

/// `ivy encrypt` and `ivy decrypt`: message tokens from standard input to standard output.
enum CryptoCommands {
    static let encryptHelp = """
        usage: ivy encrypt [--legacy] [--key-file PATH]

        Reads plaintext on standard input and writes its token to standard output:
        $ivy-v1$… (authenticated, the default) or, with --legacy, node ivy's $aes-256-cbc$….
        The key comes from --key-file (first line) or $MESSAGES_ENCRYPTION_KEY, never from an
        argument.
        """

    static let decryptHelp = """
        usage: ivy decrypt [--key-file PATH]

        Reads a token of either format on standard input and writes the plaintext to standard
        output. The key comes from --key-file (all its lines are tried) or
        $MESSAGES_ENCRYPTION_KEY. A wrong key, tampering, truncation or bad base64 exits 1 with
        a one-line reason on standard error.
        """

    static func encrypt(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let keys = try KeyOptions(&arguments, legacyFlag: "--legacy")
        try arguments.finish()
        let encryption = try require(keys)
        let plaintext = Array(FileHandle.standardInput.readDataToEndOfFile())
        Console.out(String(decoding: encryption.token(for: plaintext), as: UTF8.self))
        return ExitStatus.success.rawValue
    }

    static func decrypt(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let keys = try KeyOptions(&arguments)
        try arguments.finish()
        let encryption = try require(keys)
        let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        let token = Array(input.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        guard token.first == UInt8(ascii: "$") else {
            throw IvyError(
                .decryptionFailed, detail: "standard input is not a token ($ivy-v1$… or $aes-256-cbc$…)")
        }
        FileHandle.standardOutput.write(Data(try encryption.plaintext(of: token)))
        return ExitStatus.success.rawValue
    }

    private static func require(_ keys: KeyOptions) throws -> MessageEncryption {
        guard let encryption = keys.encryption else {
            throw CommandLineArguments.UsageError(
                description: "no key: set MESSAGES_ENCRYPTION_KEY or pass --key-file PATH")
        }
        return encryption
    }
}
