"""python: runs a snippet of Python in a fresh sandboxed interpreter per call.

Each call is a new instance of this component: nothing persists between calls, there is no file
system, no network, no environment, the clock is frozen and `random` is seeded from the call. Only
the modules imported below exist (there is nothing to import from at run time).
"""

import ast
import bisect
import builtins
import cmath
import collections
import contextlib
import datetime
import decimal
import fractions
import functools
import heapq
import io
import itertools
import json
import math
import operator
import random
import re
import statistics
import string
import sys
import textwrap
import traceback

# datetime's and time's strptime import _strptime on first use, and at run time there is nothing
# to import it from: import it here, at build time, like the modules the docs promise.
import _strptime  # noqa: F401

from toolenv_guest import Run, ToolError, tool  # noqa: F401 - Run is the component's export

PRELOADED = {
    m.__name__: m
    for m in (
        math, cmath, statistics, fractions, decimal, itertools, collections, functools, operator,
        re, json, datetime, random, heapq, bisect, string, textwrap,
    )
}


def _where(e: BaseException) -> str:
    """` (line N)` for the innermost frame of the snippet, if any."""
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == "<code>"]
    return f" (line {lines[-1]})" if lines else ""


@tool
def python(code: str) -> dict:
    """Run Python 3 code and return what it printed and the value of its last line if that is an expression. Preloaded (no import needed; nothing else can be imported): math, cmath, statistics, fractions, decimal, itertools, collections, functools, operator, re, json, datetime, random, heapq, bisect, string, textwrap. Each call starts fresh. An exception is an error giving its type and message. Example: {"code": "x = [3, 1, 2]\\nprint(sorted(x))\\nsum(x) / len(x)"} returns {"stdout": "[1, 2, 3]\\n", "result": "2.0"}.

    Args:
        code: The Python source to run. Use print() for output; the last expression's repr is returned as `result`.
    """
    try:
        tree = ast.parse(code, "<code>", "exec")
    except SyntaxError as e:
        raise ToolError(f"SyntaxError: {e.msg} (line {e.lineno})") from None
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    scope = {"__name__": "__main__", "__builtins__": builtins, **PRELOADED}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(tree, "<code>", "exec"), scope)
            value = eval(compile(last, "<code>", "eval"), scope) if last else None
    except SystemExit as e:
        raise ToolError(f"SystemExit: {e.code}") from None
    except RecursionError:
        raise ToolError("RecursionError: maximum recursion depth exceeded") from None
    except Exception as e:  # noqa: BLE001 - the model sees every failure of its code
        text = str(e)
        message = f"{type(e).__name__}: {text}" if text else type(e).__name__
        raise ToolError(message + _where(e)) from None
    sys.stdout.flush()
    return {"stdout": out.getvalue(), "result": None if value is None else repr(value)}
