// swift-tools-version: 6.1
// migpilot: plans and drives live migrations of memory-heavy guests.
// Module arrows follow ../shared/DESIGN.md ("Layout"); check with ../shared/tools/check-arrows.py.
import PackageDescription

let package = Package(
    name: "migpilot",
    products: [
        .executable(name: "migpilot", targets: ["migpilot"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C: liburing behind the project's own small API (liburing.h stays in the .c file, see
        // DESIGN.md "Known pitfalls"), the kernel ABI Debian's headers lack, hardware CRC32C.
        .target(
            name: "CUring",
            exclude: ["README.md"],
            cSettings: [.unsafeFlags(["-O3"])],
            linkerSettings: [.linkedLibrary("uring")]
        ),
        .systemLibrary(name: "CGSL", pkgConfig: "gsl", providers: [.apt(["libgsl-dev"])]),

        .target(name: "Migration", exclude: ["README.md"]),
        .target(name: "Traces", dependencies: ["CUring"], exclude: ["README.md"]),
        .target(name: "ConvergenceModel", dependencies: ["Migration", "Traces", "CGSL"], exclude: ["README.md"]),
        // Policy files (docs/policies.md), the pure PolicyEngine and the MigrationDriver loop.
        .target(name: "Policies", dependencies: ["Migration", "ConvergenceModel", .product(name: "Yams", package: "Yams")], exclude: ["README.md"]),
        .target(name: "WhatIf", dependencies: ["Policies", "Migration", "Traces"], exclude: ["README.md"]),
        // Byte channels for the migration stream: tcp (io_uring), unix, exec, stdio, file.
        .target(name: "Transport", dependencies: ["CUring", "Migration"], exclude: ["README.md"]),
        // The embedded engine (issue 4): guest, dirty tracking, stream, source, destination.
        .target(name: "MigrationEngine", dependencies: ["Migration", "Transport", "Traces", "CUring"], exclude: ["README.md"]),
        // QMP (issue 6): QEMU's monitor protocol, as a client (QMPMigration drives a QEMU pair)
        // and as a server (a migpilot guest answers what QEMU's tools send).
        .target(name: "QMP", dependencies: ["Migration", "Transport"], exclude: ["README.md"]),

        .executableTarget(
            name: "migpilot",
            dependencies: [
                "Migration", "Traces", "Policies", "WhatIf", "Transport", "MigrationEngine", "QMP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Benchmarks (release builds; see Benchmarks/README.md).
        .executableTarget(name: "migpilot-trace-bench", dependencies: ["Traces", "Migration"], path: "Benchmarks/TraceBench"),
        .executableTarget(name: "migpilot-stream-bench", dependencies: ["MigrationEngine"], path: "Benchmarks/StreamBench"),
        .executableTarget(name: "migpilot-transport-bench", dependencies: ["Transport", "Migration"], path: "Benchmarks/TransportBench"),
        .executableTarget(name: "migpilot-model-bench", dependencies: ["ConvergenceModel", "Traces", "Migration"], path: "Benchmarks/ModelBench"),
        .executableTarget(name: "migpilot-guest-bench", dependencies: ["MigrationEngine", "Traces"], path: "Benchmarks/GuestBench"),
        .executableTarget(name: "migpilot-recovery-bench", dependencies: ["MigrationEngine", "Traces"], path: "Benchmarks/RecoveryBench"),

        .testTarget(name: "CUringTests", dependencies: ["CUring"]),
        .testTarget(name: "CGSLTests", dependencies: ["CGSL"]),
        .testTarget(name: "MigrationTests", dependencies: ["Migration"]),
        .testTarget(name: "TracesTests", dependencies: ["Traces", "CUring"]),
        .testTarget(name: "ConvergenceModelTests", dependencies: ["ConvergenceModel", "Traces", "Migration"]),
        .testTarget(name: "PoliciesTests", dependencies: ["Policies", "Migration"], exclude: ["Malformed"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "Migration", "CUring"]),
        .testTarget(name: "MigrationEngineTests", dependencies: ["MigrationEngine", "Policies", "Transport", "Migration", "Traces", "CUring"]),
        .testTarget(name: "QMPTests", dependencies: ["QMP", "Transport", "Migration", "Traces"]),
        .testTarget(name: "WhatIfTests", dependencies: ["WhatIf", "Policies", "Traces", "Migration"]),
        .testTarget(name: "EndToEndTests", dependencies: ["migpilot"]),
    ],
    swiftLanguageModes: [.v6]
)
