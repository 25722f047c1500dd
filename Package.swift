// swift-tools-version:6.0
import PackageDescription

/// Settings shared by every Swift target: explicit existentials, imports that must be named
/// where they are used, and internal imports unless a public signature needs the module.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "ivy-swift",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Ivy", targets: ["Ivy"]),
        .library(name: "IvyCore", targets: ["IvyCore"]),
        .library(name: "IvyRedis", targets: ["IvyRedis"]),
        .library(name: "IvyRedisNotify", targets: ["IvyRedisNotify"]),
        .library(name: "IvyIronMQ", targets: ["IvyIronMQ"]),
        .library(name: "IvyAMQP", targets: ["IvyAMQP"]),
        .library(name: "IvyExamples", targets: ["IvyExamples"]),
        .library(name: "IvyHTTP", targets: ["IvyHTTP"]),
        .library(name: "IvyDashboard", targets: ["IvyDashboard"]),
        .executable(name: "ivy", targets: ["ivy"]),
    ],
    targets: [
        // System libraries, linked through pkg-config (no Swift package dependencies).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // hiredis without pkg-config: its cflags add -D_FILE_OFFSET_BITS=64, which SwiftPM flags in
        // every build of every package that depends on Ivy ("prohibited flag"). The shim includes
        // <hiredis/hiredis.h> and the modulemap links the library, so nothing else is needed; the
        // define changes nothing on 64-bit Linux, where off_t is 64 bits already.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(
            name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),

        .target(name: "IvyCore", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),
        .target(
            name: "IvyRedis", dependencies: ["IvyCore", "CHiredis", "COpenSSL"], swiftSettings: swiftSettings),
        .target(name: "IvyRedisNotify", dependencies: ["IvyCore", "IvyRedis"], swiftSettings: swiftSettings),
        .target(name: "IvyIronMQ", dependencies: ["IvyCore", "CCurl"], swiftSettings: swiftSettings),
        .target(name: "IvyAMQP", dependencies: ["IvyCore", "CRabbitMQ"], swiftSettings: swiftSettings),
        .target(name: "IvyExamples", dependencies: ["IvyCore"], swiftSettings: swiftSettings),
        .target(name: "IvyHTTP", dependencies: ["IvyCore", "CMicroHTTPD"], swiftSettings: swiftSettings),
        .target(name: "IvyDashboard", dependencies: ["IvyCore", "IvyHTTP"], swiftSettings: swiftSettings),
        .target(
            name: "Ivy", dependencies: ["IvyCore", "IvyRedis", "IvyRedisNotify", "IvyIronMQ", "IvyAMQP"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ivy", dependencies: ["Ivy", "IvyExamples", "IvyHTTP", "IvyDashboard"],
            swiftSettings: swiftSettings),

        // Helpers shared by the test targets; not a product.
        .target(
            name: "IvyTestSupport", dependencies: ["IvyCore"], path: "Tests/IvyTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyCoreTests", dependencies: ["IvyCore", "IvyExamples", "IvyTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyConformanceTests",
            dependencies: [
                "ivy", "Ivy", "IvyCore", "IvyRedis", "IvyRedisNotify", "IvyAMQP", "IvyExamples",
                "IvyTestSupport",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyCLITests", dependencies: ["ivy", "Ivy", "IvyTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyIronMQTests",
            dependencies: ["ivy", "Ivy", "IvyIronMQ", "IvyExamples", "IvyTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyHTTPTests", dependencies: ["IvyHTTP", "IvyCore", "IvyTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyDashboardTests",
            dependencies: ["IvyDashboard", "IvyHTTP", "IvyCore", "IvyTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyAMQPTests", dependencies: ["ivy", "IvyAMQP", "IvyTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IvyRedisTests",
            dependencies: ["ivy", "Ivy", "IvyRedis", "IvyRedisNotify", "IvyExamples", "IvyTestSupport"],
            swiftSettings: swiftSettings),
    ],
    swiftLanguageModes: [.v6]
)
