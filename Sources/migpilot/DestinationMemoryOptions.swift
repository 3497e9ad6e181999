import ArgumentParser
import Migration
import MigrationEngine

/// How a destination's guest memory is set up before the stream arrives: fresh (each page pays
/// its first touch as it lands) or, with `--mem-prealloc` as in QEMU, faulted in beforehand.
struct DestinationMemoryOptions: ParsableArguments {
    @Flag(name: .customLong("mem-prealloc"),
          help: "Fault the destination's memory in before the migration starts (as QEMU's -mem-prealloc).")
    var prealloc = false

    /// The destination's memory of `size`, populated first if asked.
    func memory(_ size: ByteCount) throws -> GuestMemory {
        let memory = try GuestMemory(bytes: Int(size.bytes))
        if prealloc { try memory.populate() }
        return memory
    }
}
