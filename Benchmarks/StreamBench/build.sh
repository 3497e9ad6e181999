#!/bin/sh
# Builds and runs the stream benchmark against a release build of MigrationEngine, without a
# SwiftPM target of its own: `sh Benchmarks/StreamBench/build.sh` from the repository root.
set -e
swift build -c release --target MigrationEngine
B=.build/release
swiftc -O -I $B/Modules -Xcc -I -Xcc Sources/CUring/include \
    -Xcc -fmodule-map-file=$B/CUring.build/module.modulemap \
    Benchmarks/StreamBench/main.swift $B/MigrationEngine.build/*.o $B/Traces.build/*.o \
    $B/Migration.build/*.o $B/CUring.build/*.o -luring -o $B/migpilot-stream-bench
$B/migpilot-stream-bench
