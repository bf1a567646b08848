"""The guest half of the tool contract for tools written in Python (the counterpart of tools/guest).

A tool is a typed function. This module turns it into a WASI command component built with
componentize-py: one JSON object (the arguments) on stdin, one JSON value (the result) on stdout,
exit code 0; a failure the model should see is one line on stderr and exit code 1, which the host
turns into a typed tool error. Python's `random` is reseeded at every call from the sandbox's
per-call random bytes (episode seed, tool name and argument bytes), so the same call gives the
same result on every run.

Every module a tool uses must be imported at module level: componentize-py snapshots the
interpreter when it builds the component, and at run time there is no file system to import from.

The same module, run by a normal Python on the host, writes the tool's JSON Schema from the
function's signature and docstring:

    python3 tools/python/toolenv_guest.py schema tools/python/text_stats/app.py > schemas/tools/text_stats.json

    from toolenv_guest import tool, Run  # Run is the export componentize-py looks for

    @tool
    def text_stats(text: str, top: int = 3) -> dict:
        '''Counts the words of a text.

        Args:
            text: The text to count.
            top: How many of the most common words to list.
        '''
"""

import inspect
import json
import os
import random
import sys
import types
import typing

__all__ = ["tool", "Run", "ToolError", "schema_of", "imported_during_call"]

#: Longest error message written to stderr, in characters (the host caps stderr as well).
MAX_MESSAGE = 1000

_TOOL = None
_MODULES_AT_CALL = 0

# random.seed() of bytes imports its SHA-512 the first time it runs, and at run time every call is
# a first time (a fresh instance of the build's snapshot): that import was a fifth of an echo
# call. Seeding once here, at build time, puts the import in the snapshot.
random.seed(b"")


class ToolError(Exception):
    """An error the model should see as the tool's message, without the exception's type name."""


def tool(function):
    """Registers `function` as this component's tool. Exactly one tool per component."""
    global _TOOL
    if _TOOL is not None and _TOOL is not function:
        raise RuntimeError(f"a component has one tool; {_TOOL.__name__} is already registered")
    _TOOL = function
    return function


def _fail(message):
    sys.stdout.flush()
    sys.stderr.write(message[:MAX_MESSAGE] + "\n")
    sys.stderr.flush()
    os._exit(1)


def call(function, raw):
    """Runs `function` on the JSON arguments in `raw` and returns the JSON text of its result."""
    try:
        args = json.loads(raw)
    except ValueError as e:
        raise ToolError(f"arguments are not JSON: {e}") from None
    if not isinstance(args, dict):
        raise ToolError("arguments must be a JSON object")
    return json.dumps(function(**args), ensure_ascii=False, allow_nan=False)


def imported_during_call():
    """The modules imported so far in this call, oldest first. Each call starts from the build's
    snapshot, so a module imported at run time is imported again on every call (and only a
    built-in one can be): a tool should import nothing once it runs."""
    return list(sys.modules)[_MODULES_AT_CALL:]


class Run:
    """The `wasi:cli/run` export: one call of the registered tool."""

    def run(self) -> None:
        global _MODULES_AT_CALL
        _MODULES_AT_CALL = len(sys.modules)
        if _TOOL is None:
            _fail("no tool registered: decorate a function with @toolenv_guest.tool")
        random.seed(os.urandom(32))
        try:
            out = call(_TOOL, sys.stdin.buffer.read())
        except SystemExit as e:
            # sys.exit(n) ends the call with code n, sys.exit("why") with the message and code 1.
            if isinstance(e.code, str):
                _fail(e.code)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.code or 0)
        except ToolError as e:
            _fail(str(e))
        except RecursionError:
            _fail("RecursionError: maximum recursion depth exceeded")
        except MemoryError:
            _fail("MemoryError: out of memory")
        except Exception as e:  # noqa: BLE001 - every failure becomes the model's observation
            _fail(_last_line(e))
        sys.stdout.write(out)
        sys.stdout.flush()


def _last_line(e):
    """`Type: message`, as the last line of a traceback reads."""
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ----------------------------------------------------------------------------------------------
# Schema generation (host side).

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(hint):
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        out = {"type": "array"}
        if args and args[0] is not Ellipsis:
            out["items"] = _json_type(args[0])
        return out
    if origin is dict or hint is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        if len(options) == 1:
            out = _json_type(options[0])
            if nullable and isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            return out
        schemas = [_json_type(a) for a in options] + ([{"type": "null"}] if nullable else [])
        return {"anyOf": schemas}
    if hint is typing.Any or hint is inspect.Parameter.empty:
        return {}
    raise TypeError(f"no JSON Schema type for the annotation {hint!r}")


def _docstring(function):
    """The description (text before `Args:`) and each parameter's description."""
    doc = inspect.getdoc(function) or ""
    lines = doc.splitlines()
    description, params, current, in_args = [], {}, None, False
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args and stripped in ("Returns:", "Raises:", "Example:", "Examples:"):
            in_args = False
            current = None
            continue
        if in_args:
            if not stripped:
                continue
            name, sep, rest = stripped.partition(":")
            if sep and line.startswith(" " * 4) and not line.startswith(" " * 8) and name.isidentifier():
                current = name
                params[name] = rest.strip()
            elif current:
                params[current] += " " + stripped
        elif not in_args and current is None:
            description.append(stripped)
    text = " ".join(" ".join(description).split())
    return text, params


def schema_of(function):
    """The tool definition (`name`, `description`, `parameters`) that `toolenv tools` reads."""
    description, param_docs = _docstring(function)
    if not description:
        raise ValueError(f"{function.__name__} has no docstring to describe it")
    hints = typing.get_type_hints(function)
    properties, required = {}, []
    for name, param in inspect.signature(function).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{function.__name__}: *{name} cannot be a JSON argument")
        prop = _json_type(hints.get(name, inspect.Parameter.empty))
        if name not in param_docs:
            raise ValueError(f"{function.__name__}: parameter `{name}` is not described under Args:")
        prop["description"] = param_docs[name]
        if param.default is inspect.Parameter.empty:
            required.append(name)
        else:
            prop["default"] = param.default
        properties[name] = prop
    return {
        "name": function.__name__,
        "description": description,
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


def _main(argv):
    import importlib.util

    if len(argv) != 3 or argv[1] != "schema":
        sys.exit("usage: toolenv_guest.py schema PATH/TO/app.py")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("app", argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if _TOOL is None:
        sys.exit(f"{argv[2]}: no function is decorated with @tool")
    print(json.dumps(schema_of(_TOOL), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    # Run as a script, this file is `__main__`; the app imports `toolenv_guest`, a second copy.
    # Point the app's import at this module so its @tool registers here.
    sys.modules.setdefault("toolenv_guest", sys.modules[__name__])
    _main(sys.argv)
