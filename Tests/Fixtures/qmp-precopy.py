#!/usr/bin/env python3
"""Precopy between two `migpilot guest --qmp` processes, driven with PyPI's qemu.qmp as QEMU
is driven with no management layer: no postcopy, only QEMU's own convergence check.

    qmp-precopy.py SOURCE_QMP DESTINATION_QMP LISTEN_URI CONNECT_URI MODE

The destination listens on LISTEN_URI; the source connects to CONNECT_URI (the same place, or
a forwarding process in between). MODE converge: the migration must complete in precopy
(the source postmigrate, the destination running, every page verified). MODE break: prints
"precopy running" once precopy runs, then expects the migration to fail when the test breaks
the link, with the source's guest running on. Prints a JSON summary last; exits 0 when all
held, 1 otherwise.
"""
import asyncio
import json
import sys

from qemu.qmp import QMPClient
from qemu.qmp.qmp_client import ExecuteError

TIMEOUT = 30


async def status_of(client, wanted):
    async def until():
        while True:
            info = await client.execute("query-migrate")
            if info.get("status") in wanted:
                return info
            await asyncio.sleep(0.05)
    return await asyncio.wait_for(until(), TIMEOUT)


async def main(source_path, destination_path, listen, connect, mode):
    src, dst = QMPClient("source"), QMPClient("destination")
    await src.connect(source_path)
    await dst.connect(destination_path)
    passes = []

    async def watch():
        async for event in src.events:
            if event["event"] == "MIGRATION_PASS":
                passes.append(event["data"]["pass"])
    asyncio.get_running_loop().create_task(watch())

    caps = await src.execute("query-migrate-capabilities")
    assert any(c["capability"] == "postcopy-ram" and not c["state"] for c in caps), caps
    params = await src.execute("query-migrate-parameters")
    assert params["downtime-limit"] == 300 and params["max-bandwidth"] == 128 << 20, params
    try:
        await src.execute("migrate-pause")
        raise SystemExit("migrate-pause outside postcopy was accepted")
    except ExecuteError as e:
        assert "only supported during postcopy-active or postcopy-recover" in str(e), str(e)
    if mode == "converge":
        # QEMU's dirty-rate measurement, on the guest's real dirty tracking.
        await src.execute("calc-dirty-rate", {"calc-time": 1})
        measuring = await src.execute("query-dirty-rate")
        assert measuring["status"] == "measuring" and measuring["calc-time"] == 1, measuring
        await asyncio.sleep(1.3)
        measured = await src.execute("query-dirty-rate")
        assert measured["status"] == "measured" and measured["dirty-rate"] > 0, measured
        print(f"dirty rate: {measured['dirty-rate']} MB/s", flush=True)
    try:
        await src.execute("migrate", {"uri": connect, "resume": True})
        raise SystemExit("migrate resume=true without a paused migration was accepted")
    except ExecuteError as e:
        assert str(e) == "Cannot resume if there is no paused migration", str(e)
    await dst.execute("migrate-incoming", {"uri": listen})
    inmigrate = await dst.execute("query-status")
    assert inmigrate["status"] == "inmigrate" and not inmigrate["running"], inmigrate
    if mode == "break":
        await src.execute("migrate-set-parameters", {"max-bandwidth": 4 << 20})
    await src.execute("migrate", {"uri": connect})
    try:
        await src.execute("migrate", {"uri": connect})
        raise SystemExit("a second migrate was accepted")
    except ExecuteError as e:
        assert str(e) == "There's a migration process in progress", str(e)
    try:
        await src.execute("migrate-set-capabilities", {"capabilities": [{"capability": "postcopy-ram", "state": True}]})
        raise SystemExit("migrate-set-capabilities during a migration was accepted")
    except ExecuteError as e:
        assert str(e) == "There's a migration process in progress", str(e)
    try:
        await src.execute("migrate-start-postcopy")
        raise SystemExit("migrate-start-postcopy without postcopy-ram was accepted")
    except ExecuteError as e:
        assert str(e) == "Enable postcopy with migrate_set_capability before the start of migration", str(e)

    if mode == "converge":
        info = await status_of(src, ("completed", "failed"))
        assert info["status"] == "completed", info
        assert "downtime" in info and "expected-downtime" not in info, info
        dinfo = await status_of(dst, ("completed", "failed"))
        assert dinfo.get("x-migpilot-verified") is True, dinfo
        assert (await src.execute("query-status"))["status"] == "postmigrate"
        assert (await dst.execute("query-status"))["running"]
    else:
        running = await status_of(src, ("active",))
        assert "expected-downtime" in running and running["ram"]["total"] > 0, running
        print("precopy running", flush=True)
        info = await status_of(src, ("completed", "failed"))
        assert info["status"] == "failed", info
        state = await src.execute("query-status")
        assert state["status"] == "running" and state["running"], state
    print(json.dumps({"status": info["status"], "passes": passes, "info": info}), flush=True)
    for client in (src, dst):
        try:
            await client.disconnect()
        except (EOFError, OSError):
            pass  # a destination whose incoming migration failed has exited, as QEMU's does


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:6]))
    except (AssertionError, ExecuteError, asyncio.TimeoutError) as e:
        print(f"precopy check failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
