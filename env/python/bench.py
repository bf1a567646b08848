"""In-process calls per second from Python (calculator), on 1 and 2 threads, beside a pure-Python
function doing the same arithmetic and a `python3 -c` subprocess per call, in one run.

The in-process rows are measured BENCH_REPEATS times and printed as the median with the range:
on two threads the rate depends on how the threads meet at the GIL (env/python/src/gil.rs), which
varies from run to run, so one run says little.

Run: scripts/python.sh bench   (or: .venv-py/bin/python env/python/bench.py)
Env: BENCH_SECONDS per row (default 3), BENCH_REPEATS of the in-process rows (default 5).
"""

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import toolenv

REPO = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
EXPRESSIONS = ["2+3*4", "(1.5+2)*-3", "2^10-1", "((7-2)*(3+4))/5"]


def rate(threads, one_call):
    stop = time.perf_counter() + SECONDS
    counts = [0] * threads

    def work(k):
        n = 0
        while time.perf_counter() < stop:
            one_call(n, k)
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
    # One session per thread, as the Rust bench gives each thread its own episodes.
    sessions = [env.session() for _ in range(2)]

    def ours(n, k):
        r = sessions[k].call("calculator", {"expression": EXPRESSIONS[n % 4]})
        assert r.error is None

    def pure(n, k):
        eval(EXPRESSIONS[n % 4].replace("^", "**"), {"__builtins__": {}})

    def subproc(n, k):
        code = f"print({EXPRESSIONS[n % 4].replace('^', '**')})"
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)

    def spread(threads):
        rates = sorted(rate(threads, ours) for _ in range(REPEATS))
        return f"{statistics.median(rates):,.0f} ({rates[0]:,.0f}-{rates[-1]:,.0f})"

    print(f"calculator calls/s from Python, {os.cpu_count()} CPUs, {SECONDS} s per row; "
          f"in-process: median (range) of {REPEATS} runs")
    print(f"{'':36} {'1 thread':>24} {'2 threads':>24}")
    print(f"{'toolenv.Session.call (in-process)':36} {spread(1):>24} {spread(2):>24}")
    for title, f in [("pure-Python eval", pure), ("subprocess python3 -c", subproc)]:
        print(f"{title:36} {rate(1, f):>24,.0f} {rate(2, f):>24,.0f}")


if __name__ == "__main__":
    main()
