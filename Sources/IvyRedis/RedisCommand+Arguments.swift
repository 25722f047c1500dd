// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension RedisCommand {
    /// The bytes of argument `index` (the name being 0), read back from the encoded command.
    func argument(at index: Int) -> ArraySlice<UInt8>? {
        guard index < argumentCount else { return nil }
        var offset = 0
        var current = 0
        while offset < encodedArguments.count {
            // "$<length>\r\n<bytes>\r\n"
            var length = 0
            var cursor = offset + 1
            while cursor < encodedArguments.count, encodedArguments[cursor] != 13 {
                length = length * 10 + Int(encodedArguments[cursor] &- UInt8(ascii: "0"))
                cursor += 1
            }
            let start = cursor + 2
            guard start + length <= encodedArguments.count else { return nil }
            if current == index { return encodedArguments[start..<(start + length)] }
            offset = start + length + 2
            current += 1
        }
        return nil
    }
}
