import ArgumentParser

/// The `migpilot` command: plans and drives live migrations of memory-heavy guests.
@main
struct Migpilot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migpilot",
        abstract: "Plan and drive live migrations of memory-heavy guests.",
        discussion: """
            Examples:
              migpilot trace info datasets/redis-benchmark.trace
              migpilot trace synth --kind zipf --pages 262144 --rate 50000 \\
                  --duration 60s -o zipf.trace
              migpilot trace record --interval 200ms --duration 60s -o app.trace \\
                  -- ./app --serve
              migpilot policy check policies/nova.yaml
              migpilot policy show --json policies/adaptive.yaml
              migpilot whatif --trace datasets/jvm-gc.trace \\
                  --policy policies/adaptive.yaml --bandwidth 1Gbit/s
              migpilot tune --trace datasets/pgbench.trace --bandwidth 1Gbit/s \\
                  --objective min-total-time -o tuned.yaml
              migpilot migrate --memory 256MiB --workload uniform:rate=60000 \\
                  --bandwidth 1Gbit/s
              migpilot guest --incoming tcp:0.0.0.0:4444 --memory 256MiB \\
                  --workload uniform:rate=20000

            Exit codes: 0 success; 2 tune found no feasible point; 3 finished
            with less than asked (see the message); 64 wrong usage; 65 bad
            input data (a corrupt trace with its byte offset, a policy with
            its errors' lines); 66 an input cannot be opened; 69 a process to
            record is missing; 74 an I/O error.
            """,
        subcommands: [TraceCommand.self, PolicyCommand.self, WhatIfCommand.self, TuneCommand.self, MigrateCommand.self, RecoverCommand.self, IncomingCommand.self, GuestCommand.self]
    )
}
