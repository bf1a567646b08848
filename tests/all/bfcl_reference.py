"""Writes data/bfcl/checker.jsonl: model outputs crafted against BFCL's single-turn entries, each
with the verdict bfcl-eval's own checker gives it. tests/all/bfcl.rs scores every line with our
Rust checker and requires the same verdict and error_type.

    python3 tests/all/bfcl_reference.py            # after scripts/fetch-bfcl.sh

It imports bfcl-eval's `ast_checker` and `is_empty_output` from the unpacked wheel in `.bfcl/`
(pinned by scripts/fetch-bfcl.sh). Two modules the checker imports only for things it does not
use here are stood in for: the model registry (`constants/model_config.py`, which imports every
provider's SDK; the checker reads one flag from it, `underscore_to_dot`, given here per case) and
`filelock` (used by bfcl-eval's file loading only).

Outputs are decoded by ToolRL's rule, written out below (`decode`): the text after the last
`<tool_call>` up to `</tool_call>`, one JSON object a line with a `name` and an object
`parameters`; other lines, and calls named `none`, are skipped.

Two kinds of case:
- `id`: a real entry (by id; the test reads its docs and possible answers from `.bfcl/`), with an
  output built from its possible answers and then, seeded, changed by one rule (a value of
  another type, a dropped or added parameter or call, a renamed function, a reordered list, a
  string spelled differently, Java and JavaScript literals written another way, …).
- `entry`: a small made-up entry (docs and possible answers inline) pinning one rule each.
"""

import json
import random
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".bfcl"))


class _Model:
    def __init__(self, underscore_to_dot):
        self.underscore_to_dot = underscore_to_dot


_config = types.ModuleType("bfcl_eval.constants.model_config")
_config.MODEL_CONFIG_MAPPING = {"toolrl": _Model(False), "toolrl-fc": _Model(True)}
sys.modules["bfcl_eval.constants.model_config"] = _config
_filelock = types.ModuleType("filelock")
_filelock.FileLock = object
sys.modules["filelock"] = _filelock

from bfcl_eval.constants.enums import Language  # noqa: E402
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker  # noqa: E402
from bfcl_eval.utils import is_empty_output  # noqa: E402

DATA = ROOT / ".bfcl" / "bfcl_eval" / "data"
OUT = ROOT / "data" / "bfcl" / "checker.jsonl"
SINGLE_TURN = [
    "simple_python", "simple_java", "simple_javascript", "multiple", "parallel",
    "parallel_multiple", "irrelevance", "live_simple", "live_multiple", "live_parallel",
    "live_parallel_multiple", "live_irrelevance", "live_relevance",
]


def decode(text):
    if "<tool_call>" not in text:
        return []
    body = text.split("<tool_call>")[-1].split("</tool_call>")[0]
    calls = []
    for line in body.split("\n"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        name, params = obj.get("name"), obj.get("parameters")
        if not isinstance(name, str) or not isinstance(params, dict) or name.lower() == "none":
            continue
        calls.append({name: params})
    return calls


def language(category):
    if "javascript" in category:
        return Language.JAVASCRIPT
    if "java" in category:
        return Language.JAVA
    return Language.PYTHON


def verdict(category, functions, truth, text, fc):
    decoded = decode(text)
    if "relevance" in category:
        contains = not is_empty_output(decoded)
        valid = contains != ("irrelevance" in category)
        kind = None
        if not valid:
            kind = ("irrelevance_error:decoder_success" if "irrelevance" in category
                    else "relevance_error:decoder_failed")
        return {"valid": valid, "error_type": kind}
    try:
        r = ast_checker(functions, decoded, truth, language(category), category,
                        "toolrl-fc" if fc else "toolrl")
    except Exception as e:  # bfcl-eval would stop here; the Rust side reports it as such
        return {"exception": type(e).__name__}
    return {"valid": r["valid"], "error_type": None if r["valid"] else r.get("error_type", "")}


def tool_text(calls, think="I will call the function."):
    lines = "\n".join(json.dumps({"name": n, "parameters": p}) for n, p in calls)
    return f"<think> {think} </think>\n<tool_call>\n{lines}\n</tool_call>"


def load(category):
    entries = [json.loads(l) for l in open(DATA / f"BFCL_v4_{category}.json") if l.strip()]
    answers = DATA / "possible_answer" / f"BFCL_v4_{category}.json"
    if answers.exists():
        truth = {a["id"]: a["ground_truth"] for a in map(json.loads, open(answers)) if a}
        for e in entries:
            e["ground_truth"] = truth[e["id"]]
    return entries


def doc_of(functions, name):
    for f in functions:
        if f["name"] == name:
            return f
    return None


# --- Java and JavaScript literals for a Python value of a documented type ---

def java_literal(value, ty, item=None, rng=None):
    if ty in ("any", "String", "char") or isinstance(value, str):
        return value if isinstance(value, str) else json.dumps(value)
    if ty == "boolean":
        return "true" if value else "false"
    if ty == "long":
        return f"{value}L"
    if ty == "float":
        return f"{value}f"
    if ty == "double":
        return str(float(value))
    if ty in ("Array", "ArrayList") and isinstance(value, list):
        def el(v):
            if item in ("String", "char") or isinstance(v, str):
                return json.dumps(v) if item != "char" else f"'{v}'"
            return java_literal(v, item or "any")
        inner = ", ".join(el(v) for v in value)
        if ty == "Array":
            return f"new {'String' if item == 'String' else 'int'}[]{{{inner}}}"
        if rng is not None and rng.random() < 0.5:
            adds = " ".join(f"add({el(v)});" for v in value)
            return f"new ArrayList<>() {{{{ {adds} }}}}"
        return f"new ArrayList<>(Arrays.asList({inner}))"
    if ty == "HashMap" and isinstance(value, dict):
        puts = " ".join(f"put({json.dumps(k)}, {json.dumps(v) if isinstance(v, str) else java_literal(v, 'any')});"
                        for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(value)


def js_literal(value, ty, item=None, rng=None):
    if ty == "String":
        if not isinstance(value, str):
            return json.dumps(value)
        return f"'{value}'" if rng is not None and rng.random() < 0.5 else value
    if ty == "any" or isinstance(value, str):
        return value if isinstance(value, str) else json.dumps(value)
    if ty == "Boolean":
        return "true" if value else "false"
    if ty == "Bigint":
        return f"{value}n"
    if ty in ("integer", "float"):
        return str(value)
    if ty == "array" and isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) if isinstance(v, str) else js_literal(v, item or "any")
                               for v in value) + "]"
    if ty == "dict" and isinstance(value, dict):
        return "{" + ", ".join(f"'{k}': " + (f"'{v}'" if isinstance(v, str) else js_literal(v, "any"))
                               for k, v in value.items()) + "}"
    return json.dumps(value)


def first_option(options):
    for o in options:
        if o != "":
            return o
    return None


def pick(options, rng):
    real = [o for o in options if o != ""]
    return rng.choice(real) if real else None


def concrete(value, rng):
    """A dict answer's values are lists of options; choose one of each."""
    if isinstance(value, dict):
        out = {}
        for k, opts in value.items():
            v = pick(opts, rng) if isinstance(opts, list) else opts
            if v is not None:
                out[k] = concrete(v, rng)
        return out
    if isinstance(value, list):
        return [concrete(v, rng) for v in value]
    return value


def build_call(name, answer, doc, category, rng, alternative):
    params = {}
    props = doc["parameters"].get("properties", {}) if doc else {}
    for param, options in answer.items():
        value = pick(options, rng) if alternative else first_option(options)
        if value is None:
            continue
        value = concrete(value, rng)
        ty = props.get(param, {}).get("type", "string")
        item = props.get(param, {}).get("items", {}).get("type")
        if language(category) == Language.JAVA:
            value = java_literal(value, ty, item, rng)
        elif language(category) == Language.JAVASCRIPT:
            value = js_literal(value, ty, item, rng)
        params[param] = value
    return [name, params]


def other_value(v, rng):
    if isinstance(v, bool):
        return rng.choice([not v, int(v), str(v).lower()])
    if isinstance(v, int):
        return rng.choice([v + 1, float(v), str(v), True, -v, v * 10])
    if isinstance(v, float):
        return rng.choice([v + 0.5, int(v), str(v), v * 2])
    if isinstance(v, str):
        return rng.choice([v.upper(), v.replace(" ", "-"), v + " x", v.replace(" ", ""),
                           f" {v}.", v[: len(v) // 2], v.replace("'", '"'), "", 5])
    if isinstance(v, list):
        return rng.choice([list(reversed(v)), v[:-1], v + v[:1], [str(x) for x in v], []])
    if isinstance(v, dict):
        keys = list(v)
        choice = rng.random()
        if keys and choice < 0.4:
            return {k: v[k] for k in keys[1:]}
        if choice < 0.7:
            return {**v, "extra_key": 1}
        return {k: other_value(x, rng) for k, x in v.items()}
    return None


def mutate(calls, entry, rng):
    """One change to a correct output; returns (label, calls or text)."""
    rules = ["value", "drop_param", "add_param", "rename", "drop_call", "add_call", "shuffle",
             "noise", "unclosed", "fc_name"]
    rule = rng.choice(rules)
    calls = json.loads(json.dumps(calls))
    if rule == "value":
        name, params = rng.choice(calls)
        if params:
            k = rng.choice(list(params))
            params[k] = other_value(params[k], rng)
    elif rule == "drop_param":
        name, params = rng.choice(calls)
        if params:
            del params[rng.choice(list(params))]
    elif rule == "add_param":
        name, params = rng.choice(calls)
        doc = doc_of(entry["function"], name)
        unused = [p for p in (doc or {}).get("parameters", {}).get("properties", {}) if p not in params]
        key = rng.choice(unused) if unused and rng.random() < 0.6 else "unexpected"
        params[key] = rng.choice([1, "x", True, 2.5, [1], {"a": 1}])
    elif rule == "rename":
        c = rng.choice(calls)
        c[0] = rng.choice([c[0] + "_v2", c[0].upper(), c[0].split(".")[-1], "none"])
    elif rule == "drop_call":
        calls.pop(rng.randrange(len(calls)))
    elif rule == "add_call":
        calls.append(json.loads(json.dumps(rng.choice(calls))))
    elif rule == "shuffle":
        rng.shuffle(calls)
    elif rule == "noise":
        text = tool_text(calls)
        lines = text.split("\n")
        lines.insert(2, rng.choice(["not json", '{"name": "f", "arguments": {}}', "[1, 2]", "{"]))
        return rule, "Let me think.\n" + "\n".join(lines) + "\n<response> done </response>"
    elif rule == "unclosed":
        return rule, tool_text(calls).replace("\n</tool_call>", "")
    elif rule == "fc_name":
        return rule, [[n.replace(".", "_"), p] for n, p in calls]
    return rule, calls


def real_cases(rng):
    cases = []
    for category in SINGLE_TURN:
        entries = load(category)
        if "relevance" in category:
            sample = entries if len(entries) < 60 else rng.sample(entries, 150)
            for e in sample:
                f = e["function"]
                name = f[0]["name"] if f else "f"
                for label, text in [
                    ("no call", "<think> none fits </think>\n<response> I cannot help with that. </response>"),
                    ("a call", tool_text([[name, {}]])),
                    ("a call named none", tool_text([["None", {}]])),
                    ("arguments, not parameters", "<tool_call>\n" + json.dumps({"name": name, "arguments": {}}) + "\n</tool_call>"),
                    ("a call in an earlier block only", tool_text([[name, {}]]) + "\n<tool_call>\n</tool_call>"),
                ]:
                    if rng.random() < 0.5 or label == "a call":
                        cases.append({"label": f"{category}: {label}", "id": e["id"], "output": text})
            continue
        for e in entries:
            calls = [build_call(n, a, doc_of(e["function"], n), category, rng, False)
                     for answer in e["ground_truth"] for n, a in answer.items()]
            if rng.random() < 0.6:
                cases.append({"label": f"{category}: the possible answers' first options",
                              "id": e["id"], "output": tool_text(calls)})
            if rng.random() < 0.25:
                alt = [build_call(n, a, doc_of(e["function"], n), category, rng, True)
                       for answer in e["ground_truth"] for n, a in answer.items()]
                cases.append({"label": f"{category}: other options", "id": e["id"], "output": tool_text(alt)})
            for _ in range(2 if rng.random() < 0.3 else 1):
                rule, changed = mutate(calls, e, rng)
                case = {"label": f"{category}: {rule}", "id": e["id"]}
                if rule == "fc_name":
                    case["fc"] = True
                case["output"] = changed if isinstance(changed, str) else tool_text(changed)
                cases.append(case)
    return cases


def fn(name, props, required):
    return {"name": name, "description": "d",
            "parameters": {"type": "dict", "properties": props, "required": required}}


def synthetic_cases():
    """One made-up entry per rule, each with outputs on both sides of it."""
    out = []

    def add(label, category, functions, truth, calls_list, fc=False, raw=None):
        entry = {"category": category, "function": functions, "ground_truth": truth}
        for calls in calls_list:
            text = raw if raw is not None else tool_text(calls)
            out.append({"label": label, "entry": entry, "output": text, **({"fc": True} if fc else {})})

    i = {"type": "integer"}
    fl = {"type": "float"}
    s = {"type": "string"}
    b = {"type": "boolean"}
    f1 = [fn("f", {"n": i}, ["n"])]
    add("integer: exact type", "simple_python", f1, [{"f": {"n": [5]}}],
        [[["f", {"n": 5}]], [["f", {"n": 5.0}]], [["f", {"n": True}]], [["f", {"n": "5"}]], [["f", {"n": 6}]],
         [["f", {"n": None}]], [["f", {"n": [5]}]]])
    add("bool answers against an integer", "simple_python", f1, [{"f": {"n": [True]}}],
        [[["f", {"n": 1}]], [["f", {"n": True}]]])
    add("float accepts an integer", "simple_python", [fn("f", {"x": fl}, ["x"])], [{"f": {"x": [5.0]}}],
        [[["f", {"x": 5}]], [["f", {"x": 5.0}]], [["f", {"x": 5.5}]], [["f", {"x": "5.0"}]], [["f", {"x": False}]]])
    add("variable: an answer of another type than documented", "simple_python", f1, [{"f": {"n": ["k"]}}],
        [[["f", {"n": "k"}]], [["f", {"n": "K"}]], [["f", {"n": 3}]]])
    add("strings standardised", "simple_python", [fn("f", {"c": s}, ["c"])], [{"f": {"c": ["New York, NY"]}}],
        [[["f", {"c": c}]] for c in ["new york ny", "NewYork,NY", "New-York/NY.", "New York", "new_york*ny^",
                                      "new york, ny!", "Nëw York NY"]])
    add("quotes standardised", "simple_python", [fn("f", {"c": s}, ["c"])], [{"f": {"c": ["it's"]}}],
        [[["f", {"c": 'it"s'}]], [["f", {"c": "it's"}]], [["f", {"c": "its"}]]])
    add("optional through \"\"", "simple_python", [fn("f", {"a": i, "u": s}, ["a"])],
        [{"f": {"a": [1], "u": ["", "cm"]}}],
        [[["f", {"a": 1}]], [["f", {"a": 1, "u": "cm"}]], [["f", {"a": 1, "u": "m"}]], [["f", {"u": "cm"}]]])
    add("not optional", "simple_python", [fn("f", {"a": i, "u": s}, ["a"])], [{"f": {"a": [1], "u": ["cm"]}}],
        [[["f", {"a": 1}]], [["f", {"a": 1, "u": "cm"}]]])
    add("unexpected parameter", "simple_python", [fn("f", {"a": i, "z": i}, ["a"])], [{"f": {"a": [1]}}],
        [[["f", {"a": 1, "z": 2}]], [["f", {"a": 1, "q": 2}]]])
    arr = {"type": "array", "items": {"type": "integer"}}
    add("lists in order", "simple_python", [fn("f", {"l": arr}, ["l"])], [{"f": {"l": [[1, 2, 3]]}}],
        [[["f", {"l": v}]] for v in [[1, 2, 3], [3, 2, 1], [1, 2], [1.0, 2.0, 3.0], [1, 2, "3"], [True, 2, 3], []]])
    sarr = {"type": "array", "items": {"type": "string"}}
    add("list strings standardised", "simple_python", [fn("f", {"l": sarr}, ["l"])],
        [{"f": {"l": [["San Francisco", "LA"], ["SF"]]}}],
        [[["f", {"l": v}]] for v in [["san francisco", "la"], ["SF"], ["sf"], ["LA", "San Francisco"], "SF", [["SF"]]]])
    tup = {"type": "tuple", "items": {"type": "float"}}
    add("tuples as lists", "simple_python", [fn("f", {"t": tup}, ["t"])], [{"f": {"t": [[1.0, 2.0]]}}],
        [[["f", {"t": v}]] for v in [[1.0, 2.0], [1, 2], [1.0, 2.5]]])
    d = {"type": "dict", "properties": {"k": s, "n": i}}
    add("dicts", "simple_python", [fn("f", {"d": d}, ["d"])], [{"f": {"d": [{"k": ["a b"], "n": [1, ""]}]}}],
        [[["f", {"d": v}]] for v in [{"k": "A-B", "n": 1}, {"k": "ab"}, {"n": 1}, {"k": "ab", "n": 2},
                                     {"k": "ab", "x": 1}, {"k": "ab", "n": 1.0}, {}, "ab"]])
    ld = {"type": "array", "items": {"type": "dict"}}
    add("lists of dicts", "simple_python", [fn("f", {"l": ld}, ["l"])],
        [{"f": {"l": [[{"a": [1]}, {"a": [2]}], [{"a": [3]}]]}}],
        [[["f", {"l": v}]] for v in [[{"a": 1}, {"a": 2}], [{"a": 3}], [{"a": 2}, {"a": 1}], [{"a": 1}], [],
                                     [{"a": 1}, {"b": 2}], [1, 2]]])
    pf = [fn("g", {"x": i}, ["x"]), fn("h", {"y": s}, ["y"])]
    add("parallel: any order, greedy match", "parallel", pf,
        [{"g": {"x": [1]}}, {"g": {"x": [1, 2]}}, {"h": {"y": ["q"]}}],
        [[["g", {"x": 2}], ["h", {"y": "q"}], ["g", {"x": 1}]],
         [["g", {"x": 1}], ["g", {"x": 2}], ["h", {"y": "q"}]],
         [["g", {"x": 2}], ["g", {"x": 2}], ["h", {"y": "q"}]],
         [["g", {"x": 1}], ["h", {"y": "q"}]],
         [["h", {"y": "q"}], ["g", {"x": 2}], ["g", {"x": 1}]]])
    add("parallel: first-match greediness can miss a matching", "parallel", pf,
        [{"g": {"x": [1, 2]}}, {"g": {"x": [1]}}],
        [[["g", {"x": 1}], ["g", {"x": 2}]], [["g", {"x": 2}], ["g", {"x": 1}]]])
    add("multiple: count, then the first call", "multiple", pf, [{"h": {"y": ["q"]}}],
        [[["h", {"y": "q"}]], [["g", {"x": 1}]], [["h", {"y": "q"}], ["g", {"x": 1}]], []])
    add("simple: exactly one call", "simple_python", f1, [{"f": {"n": [5]}}],
        [[], [["f", {"n": 5}], ["f", {"n": 5}]]])
    dotted = [fn("math.hypot", {"x": i}, ["x"])]
    add("dots in names, prompted", "simple_python", dotted, [{"math.hypot": {"x": [3]}}],
        [[["math.hypot", {"x": 3}]], [["math_hypot", {"x": 3}]]])
    add("dots in names, native tool calls", "simple_python", dotted, [{"math.hypot": {"x": [3]}}],
        [[["math.hypot", {"x": 3}]], [["math_hypot", {"x": 3}]]], fc=True)
    add("a doc without a type", "simple_python", [fn("f", {"n": {"description": "no type"}}, ["n"])],
        [{"f": {"n": [1]}}], [[["f", {"n": 1}]]])
    add("a type the checker does not know", "simple_python", [fn("f", {"n": {"type": "number"}}, ["n"])],
        [{"f": {"n": [1]}}], [[["f", {"n": 1}]]])

    def java(ty, answers, literals, item=None):
        prop = {"type": ty}
        if item:
            prop["items"] = {"type": item}
        add(f"java {ty}" + (f" of {item}" if item else ""), "simple_java", [fn("J.m", {"v": prop}, ["v"])],
            [{"J.m": {"v": answers}}], [[["J.m", {"v": lit}]] for lit in literals])

    java("integer", [42], ["42", "-42", "42L", "4_2", "042", " 42", "42\n", "4.2", "abc", 42])
    java("long", [42], ["42L", "42l", "42", "42L\n", "-42L"])
    java("float", [1.5], ["1.5f", "1.5F", "1.5", "15e-1f", "1.5f\n", "1.5d"])
    java("double", [1.5], ["1.5", "1.5f", "15e-1", "1.50", "1.5\n"])
    java("boolean", [True], ["true", "True", "false", "1"])
    java("char", ["a"], ["'a'", "a"])
    java("String", ["hello world"], ["hello world", '"hello world"', "Hello-World"])
    java("any", ["obj"], ["obj", "OBJ", "\"obj\""])
    java("Array", [[1, 2, 3]], ["new int[]{1, 2, 3}", "new int[] { 1,2,3 }", "new int[]{3, 2, 1}", "new int[]{}",
                                "{1, 2, 3}", "new int[]{1L, 2, 3}"], item="integer")
    java("Array", [["a", "b"]], ['new String[]{"a", "b"}', "new String[]{a, b}"], item="String")
    java("ArrayList", [["a", "b"]], ['new ArrayList<>(Arrays.asList("a", "b"))',
                                     'new ArrayList<String>() {{ add("a"); add("b"); }}',
                                     "new ArrayList<>()", '["a", "b"]'], item="String")
    java("ArrayList", [[1, 2]], ["new ArrayList<>(Arrays.asList(1, 2))", "new ArrayList<>(Arrays.asList(1L, 2))"],
         item="long")
    java("HashMap", [{"k": ["v"], "n": [1]}], ['new HashMap<String, Object>() {{ put("k", "v"); put("n", 1); }}',
                                               'new HashMap<>() {{put("k", "V");put("n", 1);}}',
                                               'new HashMap<String, Object>() {{ put("k", "v"); }}',
                                               "new HashMap<>()", "{k=v}",
                                               'new HashMap<String, Object>() {{ put("k", "v"); put("n", 1L\n); }}'])
    java("Set", [["a"]], ["new HashSet<>()"])
    java("integer", [42], [42])

    def js(ty, answers, literals, item=None):
        prop = {"type": ty}
        if item:
            prop["items"] = {"type": item}
        add(f"javascript {ty}" + (f" of {item}" if item else ""), "simple_javascript",
            [fn("m", {"v": prop}, ["v"])], [{"m": {"v": answers}}], [[["m", {"v": lit}]] for lit in literals])

    js("String", ["abc"], ["abc", "'abc'", '"abc"', "'abc\"", "ABC"])
    js("integer", [7], ["7", "-7", "7.0", "7n", "07"])
    js("float", [2.5], ["2.5", "2.50", "2", "2.5f", "25e-1"])
    js("Bigint", [7], ["7n", "7", "7n\n"])
    js("Boolean", [False], ["false", "true", "False"])
    js("array", [[1, 2]], ["[1, 2]", "new Array(1, 2)", "[2, 1]", "[]", "[1,2]", "1, 2"], item="integer")
    js("array", [["a", "b"]], ["['a', 'b']", '["a", "b"]', "[a, b]"], item="String")
    js("array", [[[1, 2], [3]]], ["[[1, 2], [3]]", "new Array([1, 2], [3])", "[[1,2],[3]]"], item="array")
    js("array", [[1, 2]], ["[1, 2]"], item="float")
    js("dict", [{"a": [1], "b": ["x"]}], ["{'a': 1, 'b': 'x'}", '{"a": 1, "b": "x"}', "{a: 1, b: x}",
                                           "{'a': 1}", "{}", "{'a': 1, 'b': 'x', 'c': 2}",
                                           "{'a': [1, 2], 'b': 'x'}", "{'b': x, 'a': 1}"])
    js("dict", [{"l": [[1, 2]]}], ["{'l': [1, 2]}", "{l: [1,2]}"])
    js("any", ["v"], ["v", "'v'"])

    add("a missing </tool_call> reads to the end", "simple_python", f1, [{"f": {"n": [5]}}], [None],
        raw="<tool_call>\n" + json.dumps({"name": "f", "parameters": {"n": 5}}))
    add("the last block counts", "simple_python", f1, [{"f": {"n": [5]}}], [None],
        raw=tool_text([["f", {"n": 5}]]) + "\n" + tool_text([["f", {"n": 6}]]))
    add("no <tool_call> is no call", "simple_python", f1, [{"f": {"n": [5]}}], [None],
        raw=json.dumps({"name": "f", "parameters": {"n": 5}}))
    add("a duplicate key keeps the last value", "simple_python", f1, [{"f": {"n": [5]}}], [None],
        raw='<tool_call>\n{"name": "f", "parameters": {"n": 4, "n": 5}}\n</tool_call>')
    add("parameters not an object", "simple_python", f1, [{"f": {"n": [5]}}], [None],
        raw='<tool_call>\n{"name": "f", "parameters": [5]}\n</tool_call>')
    return out


def main():
    rng = random.Random(20260323)
    cases = real_cases(rng) + synthetic_cases()
    entries = {}
    for category in SINGLE_TURN:
        for e in load(category):
            entries[e["id"]] = (category, e)
    with open(OUT, "w") as f:
        for case in cases:
            if "id" in case:
                category, e = entries[case["id"]]
                functions, truth = e["function"], e.get("ground_truth")
            else:
                category = case["entry"]["category"]
                functions, truth = case["entry"]["function"], case["entry"]["ground_truth"]
            case["expected"] = verdict(category, json.loads(json.dumps(functions)),
                                       json.loads(json.dumps(truth)), case["output"], case.get("fc", False))
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    valid = sum(1 for c in cases if c["expected"].get("valid"))
    raised = sum(1 for c in cases if "exception" in c["expected"])
    print(f"{OUT.relative_to(ROOT)}: {len(cases)} cases, {valid} valid, {raised} raise in bfcl-eval")


if __name__ == "__main__":
    main()
