#!/usr/bin/env python3
"""Feeds a QMP monitor garbage over a raw unix socket, then checks that it still answers:

    qmp-garbage.py QMP_SOCKET SEED

Sends (seeded) random bytes, malformed JSON, a line over 1 MiB, deep nesting, arrays and
strings instead of objects, unknown commands and mistyped arguments, each followed by a
newline; prints every reply as a JSON line, then the reply to `query-status`. Exits 0 when
each bad input got an error and `query-status` answered, 1 otherwise.
"""
import json
import random
import socket
import sys


def random_garbage(rng):
    """Random bytes that open no value and no string: a monitor waits for the end of a value
    it has seen begin (QEMU's does too), which would swallow the inputs after it."""
    return bytes(b for b in (rng.randrange(256) for _ in range(rng.randrange(1, 200))) if b not in b'{["\n')


def main(path, seed):
    rng = random.Random(seed)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line.strip():
                raise ValueError(f"the monitor sent {line!r} (end of stream?)")
            m = json.loads(line)
            if "event" not in m:
                return m

    greeting = reply()
    assert "QMP" in greeting, greeting
    s.sendall(b'{"execute": "qmp_capabilities"}\n')
    assert reply() == {"return": {}}
    bad = [
        b'{"execute": "query-status",',  # completed by the next line's brace: a trailing comma
        b'}}',
        b'{"execute": tru}',
        b'[1, 2, 3]',
        b'"query-status"',
        b'{"execute": "no-such-command"}',
        b'{"execute": "migrate", "arguments": {"uri": 7}}',
        b'{"execute": "migrate", "arguments": {}}',
        b'{"execute": "migrate-set-parameters", "arguments": {"downtime-limit": "fast"}}',
        b'{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "warp", "state": true}]}}',
        b'{"execute": "query-status", "arguments": {"x": "' + b"A" * ((1 << 20) + 100) + b'"}}',
        b"[" * 3000 + b"]" * 3000,
    ] + [random_garbage(rng) + b" {}" for _ in range(20)]
    errors = 0
    for b in bad:
        s.sendall(b + b"\n")
    # Every input above ends in a complete value or garbage; `{}` lacks `execute`.
    s.sendall(b'{"execute": "query-status", "id": "alive"}\n')
    while True:
        r = reply()
        print(json.dumps(r)[:300], flush=True)
        if r.get("id") == "alive":
            assert r["return"]["status"] == "running", r
            break
        assert "error" in r and r["error"]["desc"], r
        errors += 1
    print(json.dumps({"errors": errors, "alive": True}), flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except (AssertionError, OSError, ValueError) as e:
        print(f"garbage check failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
