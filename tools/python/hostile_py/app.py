"""hostile_py: a deliberately hostile Python guest, for the sandbox's limit tests (never registered
in env/config.toml). `{"mode": ...}` picks the attack, as tools/hostile does for Rust."""

import os
import random
import socket
import sys
import time

from toolenv_guest import Run, imported_during_call, tool  # noqa: F401 - Run is the component's export


def _recurse(n):
    return _recurse(n + 1) + 1


@tool
def hostile_py(mode: str, path: str = "") -> dict:
    """Test-only guest that misbehaves on purpose. Never register it for a model.

    Args:
        mode: The attack.
        path: A path, for the file-system attacks.
    """
    if mode == "loop":
        while True:
            pass
    if mode == "membomb":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
    if mode == "recurse":
        return {"depth": _recurse(0)}
    if mode == "flood":
        chunk = "x" * (1 << 16)
        for _ in range((100 << 20) // len(chunk)):
            sys.stdout.write(chunk)
        sys.stdout.flush()
        os._exit(0)
    if mode == "read_file":
        with open(path) as f:
            return {"content": f.read()}
    if mode == "list_dir":
        return {"entries": sorted(os.listdir(path))}
    if mode == "env":
        return {"environ": dict(os.environ), "argv": sys.argv}
    if mode == "socket":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", 22))
        return {"connected": True}
    if mode == "sleep":
        time.sleep(3600)
        return {"slept": True, "monotonic": time.monotonic()}
    if mode == "clock":
        return {"time": time.time(), "monotonic": time.monotonic()}
    if mode == "random":
        return {"random": random.random(), "urandom": os.urandom(8).hex()}
    if mode == "exit":
        sys.stderr.write("giving up on purpose\n")
        sys.stderr.flush()
        sys.exit(3)
    if mode == "raise":
        raise ValueError("bad input " + "x" * 5000)
    if mode == "imports":
        return {"imported": imported_during_call()}
    return {"mode": mode}
