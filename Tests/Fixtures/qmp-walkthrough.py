#!/usr/bin/env python3
"""QEMU's documented postcopy recovery (docs/devel/migration: destination `migrate-recover
URI`, source `migrate -r URI`), driven with PyPI's qemu.qmp against two `migpilot guest --qmp`
processes, as an operator would drive two QEMUs:

    qmp-walkthrough.py SOURCE_QMP DESTINATION_QMP WORKDIR

SOURCE_QMP, DESTINATION_QMP: unix socket paths. The migration stream goes over
WORKDIR/stream.sock, the recovery over a new channel, WORKDIR/recover.sock. Prints one line
per step and a JSON summary last; exits 0 when both sides completed and the destination
verified every page, 1 with the step that failed otherwise.
"""
import asyncio
import json
import sys

from qemu.qmp import QMPClient
from qemu.qmp.qmp_client import ExecuteError

TIMEOUT = 30


def step(text):
    print(text, flush=True)


class Side:
    """One guest's monitor, with every MIGRATION status it announced."""

    def __init__(self, name):
        self.name = name
        self.qmp = QMPClient(name)
        self.statuses = []
        self.events = []
        self.changed = asyncio.Event()

    async def connect(self, path):
        await self.qmp.connect(path)
        asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self):
        async for event in self.qmp.events:
            self.events.append(event["event"])
            if event["event"] == "MIGRATION":
                self.statuses.append(event["data"]["status"])
            self.changed.set()

    async def run(self, cmd, args=None, oob=False):
        return await self.qmp.execute(cmd, args, oob=oob)

    async def wait_status(self, status):
        """Waits for a MIGRATION event with `status`, then checks query-migrate says so too."""
        async def until():
            while status not in self.statuses:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), TIMEOUT)
        info = await self.run("query-migrate")
        step(f"{self.name}: {status} (query-migrate: {info.get('status')})")
        return info


async def main(source_path, destination_path, workdir):
    src, dst = Side("source"), Side("destination")
    await src.connect(source_path)
    await dst.connect(destination_path)
    # Both offered oob; qemu.qmp enables it whenever it is offered.
    step(f"connected: {src.qmp.greeting.QMP.version['package']} / capabilities {dst.qmp.greeting.QMP.capabilities}")

    for side in (src, dst):
        await side.run("migrate-set-capabilities", {"capabilities": [
            {"capability": "postcopy-ram", "state": True}, {"capability": "events", "state": True}]})
    # A link slower than the guest writes: precopy alone would never converge; a slow postcopy
    # leaves time to break it.
    await src.run("migrate-set-parameters", {"max-bandwidth": 24 << 20, "max-postcopy-bandwidth": 2 << 20})
    try:
        await src.run("migrate-start-postcopy")
        raise SystemExit("migrate-start-postcopy before migrate was accepted")
    except ExecuteError as e:
        step(f"source: migrate-start-postcopy before migrate refused: {e}")

    stream, recover = f"unix:{workdir}/stream.sock", f"unix:{workdir}/recover.sock"
    await dst.run("migrate-incoming", {"uri": stream})
    await src.run("migrate", {"uri": stream})
    await src.wait_status("active")
    await dst.wait_status("active")
    await asyncio.sleep(0.5)
    await src.run("migrate-start-postcopy")
    await src.wait_status("postcopy-active")
    await dst.wait_status("postcopy-active")
    state = await dst.run("query-status")
    assert state["running"] and state["status"] == "running", state

    await src.run("migrate-pause")
    src_info = await src.wait_status("postcopy-paused")
    dst_info = await dst.wait_status("postcopy-paused")
    assert src_info["status"] == dst_info["status"] == "postcopy-paused", (src_info, dst_info)
    try:
        await src.run("migrate", {"uri": stream})
        raise SystemExit("a second migrate while paused was accepted")
    except ExecuteError as e:
        step(f"source: migrate without resume while paused refused: {e}")

    # The recovery channel is new; migrate-recover goes out of band, as QEMU's docs advise
    # (the destination's main loop may be stuck on a page fault).
    await dst.run("migrate-recover", {"uri": recover}, oob=True)
    step(f"destination: migrate-recover {recover} (exec-oob)")
    await src.run("migrate", {"uri": recover, "resume": True})
    step(f"source: migrate resume=true {recover}")
    await src.run("migrate-set-parameters", {"max-postcopy-bandwidth": 0})

    src_info = await src.wait_status("completed")
    dst_info = await dst.wait_status("completed")
    assert dst_info.get("x-migpilot-verified") is True, dst_info
    state = await dst.run("query-status")
    assert state["running"], state
    src_state = await src.run("query-status")
    assert src_state["status"] == "postmigrate", src_state
    summary = {
        "source_statuses": src.statuses, "destination_statuses": dst.statuses,
        "source_events": sorted(set(src.events)), "destination_events": sorted(set(dst.events)),
        "ram": src_info.get("ram"), "downtime": src_info.get("downtime"), "total-time": src_info.get("total-time"),
        "verified": dst_info.get("x-migpilot-verified"), "verification": dst_info.get("x-migpilot-verification"),
        "destination_status": state["status"], "source_status": src_state["status"],
    }
    print(json.dumps(summary), flush=True)
    await src.qmp.disconnect()
    await dst.qmp.disconnect()


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:4]))
    except (AssertionError, ExecuteError, asyncio.TimeoutError) as e:
        print(f"walkthrough failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
