#!/usr/bin/env python3
"""A forwarding process between a migration's source and destination, for tests that break a
real link: kill it (SIGKILL) and both sides see the connection die; start it again on the same
port and the source can reconnect. SIGUSR1 flips one bit of the next byte going forward
(source to destination), to damage one frame in flight; SIGSTOP freezes the link silently.

    link-proxy.py LISTEN_PORT TARGET     TARGET: unix:PATH or tcp:HOST:PORT; port 0 picks one
Prints "listening PORT" once it accepts connections.
"""
import signal
import socket
import sys
import threading

corrupt_next = threading.Event()


def target_socket(target):
    kind, _, rest = target.partition(":")
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(rest)
    else:
        host, _, port = rest.rpartition(":")
        s = socket.create_connection((host, int(port)))
    return s


def pump(src, dst, forward):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            if forward and corrupt_next.is_set():
                corrupt_next.clear()
                data = bytes([data[0] ^ 0x10]) + data[1:]
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    port, target = int(sys.argv[1]), sys.argv[2]
    # A test runner may start us with signals blocked: take SIGUSR1 whatever we inherited.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
    signal.signal(signal.SIGUSR1, lambda *_: corrupt_next.set())
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    print("listening", listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        try:
            upstream = target_socket(target)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()


main()
