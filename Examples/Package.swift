// swift-tools-version:6.0
import PackageDescription

// Ivy used as your package would use it: a registered-task plugin and two executables.
let ivy: Target.Dependency = .product(name: "Ivy", package: "ivy-swift")

let package = Package(
    name: "ivy-examples",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Yours: .package(url: "https://github.com/<org>/ivy-swift.git", from: "0.1.0")
        // The name makes "ivy-swift" the identity whatever the checkout's directory is called.
        .package(name: "ivy-swift", path: "..")
    ],
    targets: [
        .target(name: "Tasks", dependencies: [ivy]),
        .executableTarget(name: "producer", dependencies: ["Tasks", ivy]),
        .executableTarget(name: "worker", dependencies: ["Tasks", ivy]),
    ],
    swiftLanguageModes: [.v6]
)
