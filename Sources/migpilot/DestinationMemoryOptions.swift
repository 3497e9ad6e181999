import ArgumentParser
import Migration
import MigrationEngine

/// How a destination is set up before the stream arrives: its guest memory fresh (each page
/// pays its first touch as it lands) or, with `--mem-prealloc` as in QEMU, faulted in
/// beforehand; and how it drops the stale pages at the switch to postcopy.
struct DestinationMemoryOptions: ParsableArguments {
    @Flag(name: .customLong("mem-prealloc"),
          help: "Fault the destination's memory in before the migration starts (as QEMU's -mem-prealloc).")
    var prealloc = false
    @Option(name: .customLong("postcopy-discard"),
            help: "How the destination drops its stale pages at the switch to postcopy: auto (runs of \(StaleRunDrop.shortestMovedRun) pages or more moved out with UFFDIO_MOVE and freed once the guest runs, when they hold \(StaleRunDrop.fewestMovedPages) pages or more; the rest dropped), move (every run) or drop (MADV_DONTNEED, every run).")
    var postcopyDiscard: StaleRunDrop = .auto

    /// Each of these options and whether it was given, for commands where they do not apply.
    var flags: [(String, Bool)] { [("--mem-prealloc", prealloc), ("--postcopy-discard", postcopyDiscard != .auto)] }
    /// The first of them given.
    var given: String? { flags.first(where: \.1)?.0 }

    /// The destination's memory of `size`, backed by huge pages where it can be and populated
    /// first if asked.
    func memory(_ size: ByteCount) throws -> GuestMemory {
        let memory = try GuestMemory(bytes: Int(size.bytes))
        // As QEMU does with guest RAM: huge pages make a first touch one fault in 512. The
        // destination takes the advice back at once if the source offers postcopy, and at
        // pass 2 otherwise (`MigrationDestination`).
        memory.adviseHugePages(true)
        if prealloc { try memory.populate() }
        return memory
    }

    /// A destination of `size` set up as asked, running `workloads` afterwards.
    func destination(_ size: ByteCount, workloads: [GuestWorkload]) throws -> MigrationDestination {
        MigrationDestination(memory: try memory(size), workloads: workloads, postcopyDiscard: postcopyDiscard)
    }
}

extension StaleRunDrop: ExpressibleByArgument {}
