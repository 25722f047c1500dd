// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// The derived keys of a configuration, wiped when the last copy of it goes.
final class KeyRing: @unchecked Sendable, CustomReflectable {
    // Invariant: `all` is set in `init` and only mutated by `deinit`, when no one else can see it.
    struct Keys {
        var legacy: LegacyCipher
        var authenticated: AuthenticatedCipher
    }

    private(set) var all: [Keys]
    var current: Keys { all[0] }

    init(passwords: [Secret]) {
        all = passwords.map {
            Keys(
                legacy: LegacyCipher(password: $0.exposedValue),
                authenticated: AuthenticatedCipher(password: $0.exposedValue))
        }
    }

    var customMirror: Mirror { Mirror(self, children: ["keys": "***"]) }

    deinit {
        for index in all.indices {
            all[index].legacy.wipe()
            all[index].authenticated.wipe()
        }
    }
}
