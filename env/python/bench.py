"""In-process calls per second from Python (calculator), on 1 and 2 threads, beside a pure-Python
function doing the same arithmetic and a `python3 -c` subprocess per call, in one run.

Run: scripts/python.sh bench   (or: .venv-py/bin/python env/python/bench.py)
Env: BENCH_SECONDS per row (default 3).
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import toolenv

REPO = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
EXPRESSIONS = ["2+3*4", "(1.5+2)*-3", "2^10-1", "((7-2)*(3+4))/5"]


def rate(threads, one_call):
    stop = time.perf_counter() + SECONDS
    counts = [0] * threads

    def work(k):
        n = 0
        while time.perf_counter() < stop:
            one_call(n)
            n += 1
        counts[k] = n

    start = time.perf_counter()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main():
    env = toolenv.Env(str(REPO / "env/config.toml"), tools=["calculator"])
    sessions = [env.session() for _ in range(2)]
    local = threading.local()

    def ours(n):
        s = getattr(local, "s", None) or sessions[threading.get_ident() % 2]
        r = s.call("calculator", {"expression": EXPRESSIONS[n % 4]})
        assert r.error is None

    def pure(n):
        eval(EXPRESSIONS[n % 4].replace("^", "**"), {"__builtins__": {}})

    def subproc(n):
        code = f"print({EXPRESSIONS[n % 4].replace('^', '**')})"
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)

    print(f"calculator calls/s from Python, {os.cpu_count()} CPUs, {SECONDS} s per row")
    print(f"{'':36} {'1 thread':>12} {'2 threads':>12}")
    for title, f in [("toolenv.Session.call (in-process)", ours), ("pure-Python eval", pure),
                     ("subprocess python3 -c", subproc)]:
        print(f"{title:36} {rate(1, f):>12,.0f} {rate(2, f):>12,.0f}")


if __name__ == "__main__":
    main()
