// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension String {
    /// The text cut to at most `limit` UTF-8 bytes on a character boundary, ending in `…` when
    /// cut: for text from messages shown or kept where its size must be bounded.
    package func cut(toUTF8Count limit: Int) -> String {
        guard utf8.count > limit else { return self }
        guard limit > 3 else { return "…" }
        var kept = ""
        var bytes = 0
        for character in self {
            bytes += character.utf8.count
            // `…` takes 3 bytes.
            if bytes > limit - 3 { break }
            kept.append(character)
        }
        return kept + "…"
    }
}
