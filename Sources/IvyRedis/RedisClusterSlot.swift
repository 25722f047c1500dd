// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Redis Cluster's hash slots: which of the 16,384 slots a key lives in, and which argument of a
/// command is its key.
package enum RedisClusterSlot {
    package static let count = 16_384

    /// The slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag, the part between the
    /// first `{` and the next `}` when that part is not empty, modulo 16,384.
    package static func of<Key: Collection<UInt8>>(key: Key) -> Int {
        var hashed = key[...]
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let rest = key[key.index(after: open)...]
            if let close = rest.firstIndex(of: UInt8(ascii: "}")), close != rest.startIndex {
                hashed = key[rest.startIndex..<close]
            }
        }
        var crc: UInt16 = 0
        for byte in hashed {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return Int(crc) % count
    }

    package static func of(key: String) -> Int { of(key: Array(key.utf8)) }

    /// The slot a command's key is in, or nil for a command without a key (`MULTI`, `EXEC`,
    /// `PUBLISH`, `SCRIPT LOAD`, `PING`, `CLIENT …`), which any node can run.
    static func of(_ command: RedisCommand) -> Int? {
        guard let position = keyPosition(command) else { return nil }
        return command.argument(at: position).map { of(key: $0) }
    }

    /// Which argument (the name being 0) holds the key that routes `command`.
    private static func keyPosition(_ command: RedisCommand) -> Int? {
        switch command.name.uppercased() {
        case "MULTI", "EXEC", "DISCARD", "SCRIPT", "PUBLISH", "PING", "ECHO", "TIME", "CLIENT", "INFO",
            "AUTH", "SELECT", "CLUSTER", "ASKING", "READONLY", "WAIT", "SUBSCRIBE", "UNSUBSCRIBE", "ACL",
            "HELLO", "FLUSHDB", "FLUSHALL", "DBSIZE", "CONFIG", "COMMAND", "FUNCTION":
            return nil
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            // name, script, numkeys, key…: no key, no slot.
            guard let count = command.argument(at: 2).flatMap({ Int(String(decoding: $0, as: UTF8.self)) }),
                count > 0
            else { return nil }
            return 3
        case "XGROUP", "XINFO", "OBJECT", "MEMORY":
            return 2  // a subcommand first
        default:
            return command.argumentCount > 1 ? 1 : nil
        }
    }
}
