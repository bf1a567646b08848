#!/usr/bin/env python3
"""Builds the executable task set: env/data/tasks/{train,test}.jsonl.

Every task's reference solution is RUN through the real tools (`toolenv batch`, one episode id per
task so kv_store state is per task) and the expected answer is derived from what the tools
returned, never from Python arithmetic alone. Python recomputes what it can (arithmetic,
conversions, facts read from the search results) and the script fails loudly on any
disagreement, on any call that errors, and on any search that misses the document a question
depends on. Deterministic: a fixed seed, no clock, no network.

Usage: scripts/make-tasks.py [--check] [--seed N] [--out DIR]
       (build first: ./tools/build.sh and cargo build --release -p toolenv; the binary is $TOOLENV,
       else looked for in $CARGO_TARGET_DIR or target/)
--check regenerates in memory and fails if the files in DIR differ.
--seed N draws another set of tasks of the same kinds and counts (default: the committed set's);
--out DIR writes train.jsonl and test.jsonl there (default: env/data/tasks).

Rounding rule: a question whose exact answer is not an integer says "rounded to 2 decimals"; the
answer is the tool's printed value rounded half-up at 2 decimals, trailing zeros dropped. Values
that sit on a rounding tie (to 1e-4) are never chosen, so half-up and half-even agree.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal

SEED = 20250101
TEST_FRACTION = 0.2
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "env", "data", "tasks")
CONFIG = os.path.join(ROOT, "env", "config.toml")


def fail(message):
    sys.exit(f"make-tasks: {message}")


# ---------------------------------------------------------------------------------------------
# Numbers


def dec(x):
    """An exact Decimal of a JSON number as the tool printed it (parsed with parse_float=Decimal)."""
    return x if isinstance(x, Decimal) else Decimal(x)


def plain(d):
    """A Decimal as plain text: no exponent, no trailing zeros."""
    d = dec(d)
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def round2(x):
    return plain(dec(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def is_integral(x):
    return dec(x) == dec(x).to_integral_value()


def near_tie(x, places=2):
    """Whether x is within 1e-4 (in units of the last kept place) of a rounding tie."""
    scaled = abs(float(x)) * 10**places
    return abs(scaled - int(scaled) - 0.5) < 1e-4


def close(a, b, rel=1e-9):
    a, b = float(a), float(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), 1.0)


def num(x):
    """A Python number as a JSON-friendly int or float (ints stay ints)."""
    return int(x) if float(x) == int(float(x)) and abs(float(x)) < 2**53 else float(x)


def py_eval(expression):
    """The calculator's grammar as Python: ^ is power."""
    if not re.fullmatch(r"[0-9+\-*/%^(). ]+", expression):
        fail(f"cannot cross-check expression {expression!r}")
    return eval(expression.replace("^", "**"), {"__builtins__": {}}, {})  # noqa: S307


# Conversion factors to the base unit of each kind, for cross-checking unit_convert.
FACTORS = {
    "m": 1, "km": 1000, "cm": 0.01, "mm": 0.001, "mi": 1609.344, "yd": 0.9144, "ft": 0.3048,
    "in": 0.0254, "nmi": 1852,
    "kg": 1, "g": 0.001, "mg": 1e-6, "lb": 0.45359237, "oz": 0.028349523125, "t": 1000,
    "st": 6.35029318,
    "s": 1, "ms": 0.001, "min": 60, "h": 3600, "day": 86400, "week": 604800, "year": 31536000,
}
KIND_OF = {}
for _u in ("m", "km", "cm", "mm", "mi", "yd", "ft", "in", "nmi"):
    KIND_OF[_u] = "length"
for _u in ("kg", "g", "mg", "lb", "oz", "t", "st"):
    KIND_OF[_u] = "mass"
for _u in ("s", "ms", "min", "h", "day", "week", "year"):
    KIND_OF[_u] = "time"
for _u in ("C", "F", "K"):
    KIND_OF[_u] = "temperature"


def py_convert(value, frm, to):
    if KIND_OF[frm] == "temperature":
        kelvin = {"C": lambda v: v + 273.15, "F": lambda v: (v - 32) * 5 / 9 + 273.15,
                  "K": lambda v: v}[frm](value)
        return {"C": lambda k: k - 273.15, "F": lambda k: (k - 273.15) * 9 / 5 + 32,
                "K": lambda k: k}[to](kelvin)
    return value * FACTORS[frm] / FACTORS[to]


UNIT_NAMES = {
    "m": "metres", "km": "kilometres", "cm": "centimetres", "mm": "millimetres", "mi": "miles",
    "yd": "yards", "ft": "feet", "in": "inches", "nmi": "nautical miles", "kg": "kilograms",
    "g": "grams", "mg": "milligrams", "lb": "pounds", "oz": "ounces", "t": "metric tonnes",
    "st": "stone", "s": "seconds", "ms": "milliseconds", "min": "minutes", "h": "hours",
    "day": "days", "week": "weeks", "year": "years (of 365 days)", "C": "degrees Celsius",
    "F": "degrees Fahrenheit", "K": "kelvin",
}


# ---------------------------------------------------------------------------------------------
# Tasks
#
# A draft is a dict: kind, question, solution (turns of (name, parameters)), derive (results ->
# answer string, results being the list of turns of tool results), and optional check (results ->
# None, raising via fail() on disagreement).


def call(name, **parameters):
    return (name, parameters)


def calc(expression):
    return call("calculator", expression=expression)


def convert(value, frm, to):
    return call("unit_convert", value=value, **{"from": frm, "to": to})


def kv(op, key=None, value=None):
    params = {"op": op}
    if key is not None:
        params["key"] = key
    if op == "set":
        params["value"] = value
    return call("kv_store", **params)


def search(query, top_k=3):
    return call("search", query=query, top_k=top_k)


def numeric_answer(value, exact):
    """The answer for a tool value: as printed when integral, else rounded to 2 decimals."""
    if not close(value, exact):
        fail(f"tool value {value} disagrees with Python's {exact}")
    return plain(value) if is_integral(value) else round2(value)


def rounding_note(exact):
    return "" if float(exact) == int(float(exact)) else " Give the answer rounded to 2 decimals."


def acceptable(exact):
    """Values whose rounded answer is unambiguous."""
    return float(exact) == int(float(exact)) or not near_tie(exact)


def last_value(results):
    return results[-1][-1]["value"]


# --- arithmetic ------------------------------------------------------------------------------

ARITHMETIC_TEMPLATES = [
    (lambda r: (r.randint(12, 99), r.randint(12, 99), r.randint(100, 999)),
     "What is {0} * {1} + {2}?", "{0}*{1}+{2}"),
    (lambda r: (r.randint(100, 999), r.randint(10, 99), r.randint(3, 19), r.randint(10, 500)),
     "Compute ({0} + {1}) * {2} - {3}.", "({0}+{1})*{2}-{3}"),
    (lambda r: (r.randint(2, 19), r.randint(3, 9)), "What is {0} raised to the power {1}?",
     "{0}^{1}"),
    (lambda r: (r.randint(1000, 99999), r.randint(7, 97)),
     "What is the remainder when {0} is divided by {1}?", "{0}%{1}"),
    (lambda r: (r.randint(100, 9999), r.randint(3, 97)), "What is {0} divided by {1}?",
     "{0}/{1}"),
    (lambda r: (r.randint(20, 400), r.randint(12, 48), r.randint(10, 999)),
     "A warehouse has {0} boxes with {1} items each, and {2} items are shipped out. How many "
     "items remain?", "{0}*{1}-{2}"),
    (lambda r: (r.choice([5, 12.5, 15, 17.5, 20, 35, 60, 85]), r.randint(40, 5000)),
     "What is {0}% of {1}?", "{1}*{0}/100"),
    (lambda r: (r.randint(2, 8), r.choice([1.25, 2.75, 3.4, 4.99, 7.5, 12.35]),
                r.choice([100, 200])),
     "You buy {0} notebooks at {1} dollars each and pay with a {2}-dollar bill. How much change "
     "do you get, in dollars?", "{2}-{0}*{1}"),
    (lambda r: (r.randint(50, 999), r.randint(50, 999), r.randint(50, 999), r.randint(50, 999)),
     "What is the average of {0}, {1}, {2} and {3}?", "({0}+{1}+{2}+{3})/4"),
    (lambda r: (r.choice([1000, 2500, 5000, 12000]), r.choice([2, 3, 4.5, 5, 6]),
                r.randint(2, 10)),
     "An account holds {0} dollars and earns {1}% interest a year, compounded yearly. How much "
     "does it hold after {2} years, in dollars?", "{0}*(1+{1}/100)^{2}"),
    (lambda r: (r.randint(3, 60), r.randint(3, 60)),
     "A right triangle has legs of {0} cm and {1} cm. How long is its hypotenuse, in cm?",
     "({0}^2+{1}^2)^0.5"),
    (lambda r: (r.randint(40, 130), r.choice([1.5, 2.25, 3, 4.5, 7.75])),
     "A car drives at {0} km/h for {1} hours. How many kilometres does it cover?", "{0}*{1}"),
]


def arithmetic_tasks(rng, count):
    tasks, seen = [], set()
    i = attempts = 0
    while len(tasks) < count:
        attempts += 1
        if attempts > 100 * count:
            fail(f"arithmetic: only {len(tasks)} distinct tasks for {count}")
        make, question, expression = ARITHMETIC_TEMPLATES[i % len(ARITHMETIC_TEMPLATES)]
        i += 1
        args = make(rng)
        expr = expression.format(*args)
        exact = py_eval(expr)
        if expr in seen or not acceptable(exact):
            i -= 1  # same template, new numbers
            continue
        seen.add(expr)
        tasks.append({
            "kind": "arithmetic",
            "question": question.format(*args) + rounding_note(exact),
            "solution": [[calc(expr)]],
            "derive": lambda res, exact=exact: numeric_answer(last_value(res), exact),
        })
    return tasks


# --- unit conversion -------------------------------------------------------------------------

CONVERSIONS = [
    ("km", "mi", (1, 500)), ("mi", "km", (1, 300)), ("m", "ft", (1, 3000)), ("ft", "m", (1, 30000)),
    ("in", "cm", (1, 100)), ("cm", "in", (1, 250)), ("yd", "m", (1, 1000)), ("nmi", "km", (1, 900)),
    ("kg", "lb", (1, 200)), ("lb", "kg", (1, 400)), ("oz", "g", (1, 64)), ("g", "oz", (10, 2000)),
    ("st", "kg", (6, 25)), ("t", "lb", (1, 40)), ("C", "F", (-40, 250)), ("F", "C", (-40, 450)),
    ("C", "K", (-200, 1500)), ("K", "F", (0, 1000)), ("h", "min", (1, 72)),
    ("day", "h", (1, 60)), ("week", "day", (1, 52)), ("year", "day", (1, 10)),
    ("min", "s", (1, 600)), ("s", "h", (600, 100000)), ("mm", "in", (1, 900)),
]
CONVERSION_PHRASES = [
    "Convert {v} {f} to {t}.",
    "How many {t} is {v} {f}?",
    "Express {v} {f} in {t}.",
]


def conversion_tasks(rng, count):
    tasks, seen = [], set()
    i = attempts = 0
    while len(tasks) < count:
        attempts += 1
        if attempts > 100 * count:
            fail(f"unit_conversion: only {len(tasks)} distinct tasks for {count}")
        frm, to, (lo, hi) = CONVERSIONS[i % len(CONVERSIONS)]
        i += 1
        value = rng.randint(lo, hi)
        if rng.random() < 0.3 and KIND_OF[frm] != "temperature":
            value = value + rng.choice([0.25, 0.5, 0.75])
        exact = py_convert(value, frm, to)
        if (frm, to, value) in seen or not acceptable(exact):
            i -= 1
            continue
        seen.add((frm, to, value))
        phrase = CONVERSION_PHRASES[len(tasks) % len(CONVERSION_PHRASES)]
        question = phrase.format(v=plain(Decimal(str(value))), f=UNIT_NAMES[frm], t=UNIT_NAMES[to])
        tasks.append({
            "kind": "unit_conversion",
            "question": question + rounding_note(exact),
            "solution": [[convert(num(value), frm, to)]],
            "derive": lambda res, exact=exact: numeric_answer(last_value(res), exact),
        })
    return tasks


# --- kv_store --------------------------------------------------------------------------------

KEYS = ["apples", "pears", "plums", "width", "height", "depth", "north", "south", "east", "west",
        "alpha", "beta", "gamma", "delta", "red", "green", "blue", "monday", "tuesday", "friday"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
WORDS = ["harbor", "lantern", "meadow", "quartz", "saffron", "tundra", "velvet", "willow",
         "ember", "glacier", "orchid", "pebble"]


def kv_product(rng):
    k1, k2, k3 = rng.sample(KEYS, 3)
    a, b = rng.randint(3, 250), rng.randint(3, 250)
    op, sym = rng.choice([("product", "*"), ("sum", "+"), ("difference", "-")])
    expr = f"{a}{sym}{b}"
    exact = py_eval(expr)

    def check(res):
        if res[1][0]["value"] != a or res[1][1]["value"] != b or res[2][0]["value"] != exact:
            fail(f"kv product task read back {res[1]} / computed {res[2]}")

    return {
        "kind": "kv_store",
        "question": f"Store the number {a} under the key \"{k1}\" and the number {b} under the "
                    f"key \"{k2}\". Then read both values back from the store, compute the {op} "
                    f"{k1} {sym} {k2} with the calculator, store the result under the key "
                    f"\"{k3}\", and finally read \"{k3}\" back. What value is stored under \"{k3}\"?",
        "solution": [[kv("set", k1, a), kv("set", k2, b)], [kv("get", k1), kv("get", k2)],
                     [calc(expr)], [kv("set", k3, exact)], [kv("get", k3)]],
        "derive": lambda res: plain(last_value(res)),
        "check": check,
    }


def kv_running_total(rng):
    start, add, sub = rng.randint(10, 500), rng.randint(10, 500), rng.randint(1, 300)
    mid = py_eval(f"{start}+{add}")
    end = py_eval(f"{mid}-{sub}")

    def check(res):
        if res[2][0]["value"] != mid or res[5][0]["value"] != end:
            fail(f"running total computed {res[2]} and {res[5]}, expected {mid} and {end}")

    return {
        "kind": "kv_store",
        "question": f"Keep a running total in the key \"total\": set it to {start}; then read it, "
                    f"add {add} with the calculator and store the result back; then read it "
                    f"again, subtract {sub} with the calculator and store the result back. "
                    "Finally read \"total\". What is its final value?",
        "solution": [[kv("set", "total", start)], [kv("get", "total")], [calc(f"{start}+{add}")],
                     [kv("set", "total", mid)], [kv("get", "total")], [calc(f"{mid}-{sub}")],
                     [kv("set", "total", end)], [kv("get", "total")]],
        "derive": lambda res: plain(last_value(res)),
        "check": check,
    }


def kv_delete_list(rng):
    keys = sorted(rng.sample(KEYS, 4))
    values = [rng.randint(1, 99) for _ in keys]
    gone = rng.choice(keys)
    remaining = [k for k in keys if k != gone]

    def derive(res):
        listed = res[-1][0]["keys"]
        if listed != remaining:
            fail(f"kv list returned {listed}, expected {remaining}")
        return ", ".join(listed)

    return {
        "kind": "kv_store",
        "question": "Store these values, one key each: "
                    + ", ".join(f"\"{k}\" = {v}" for k, v in zip(keys, values))
                    + f". Then delete the key \"{gone}\" and list the keys in the store. Which keys "
                    "remain? Answer with the key names in alphabetical order, separated by commas.",
        "solution": [[kv("set", k, v) for k, v in zip(keys, values)], [kv("delete", gone)],
                     [kv("list")]],
        "derive": derive,
    }


def kv_average(rng):
    people = rng.sample(NAMES, 3)
    ages = [rng.randint(18, 90) for _ in people]
    expr = "(" + "+".join(str(a) for a in ages) + ")/3"
    exact = py_eval(expr)
    if not acceptable(exact):
        return None
    keys = [f"{p.lower()}_age" for p in people]

    def check(res):
        if [r["value"] for r in res[1]] != ages:
            fail(f"kv average read back {res[1]}, expected {ages}")

    return {
        "kind": "kv_store",
        "question": "Record these ages in the store, under the keys "
                    + ", ".join(f"\"{k}\"" for k in keys) + ": "
                    + ", ".join(f"{p} is {a}" for p, a in zip(people, ages))
                    + ". Then read the three ages back from the store and compute their average "
                    "with the calculator. What is the average age?" + rounding_note(exact),
        "solution": [[kv("set", k, a) for k, a in zip(keys, ages)], [kv("get", k) for k in keys],
                     [calc(expr)]],
        "derive": lambda res: numeric_answer(last_value(res), exact),
        "check": check,
    }


def kv_overwrite(rng):
    key = rng.choice(["password_hint", "codename", "favourite_word", "motto", "nickname"])
    first, second = rng.sample(WORDS, 2)

    def derive(res):
        got = res[-1][0]["value"]
        if got != second:
            fail(f"kv overwrite read back {got!r}, expected {second!r}")
        return got

    return {
        "kind": "kv_store",
        "question": f"Save the word \"{first}\" under the key \"{key}\". Then overwrite it with "
                    f"the word \"{second}\", and read the key back. What word is stored under "
                    f"\"{key}\"?",
        "solution": [[kv("set", key, first)], [kv("set", key, second)], [kv("get", key)]],
        "derive": derive,
    }


def kv_tasks(rng, count):
    makers = [kv_product, kv_running_total, kv_delete_list, kv_average, kv_overwrite]
    tasks, seen = [], set()
    i = 0
    attempts = 0
    while len(tasks) < count:
        attempts += 1
        if attempts > 100 * count:
            fail(f"kv_store: only {len(tasks)} distinct tasks for {count}")
        task = makers[i % len(makers)](rng)
        if task is None or task["question"] in seen:
            continue
        i += 1
        seen.add(task["question"])
        tasks.append(task)
    return tasks


# --- search ----------------------------------------------------------------------------------

# (question, query, document id, answer as written in the document)
SEARCH_QUESTIONS = [
    ("What is the capital of France?", "France capital", "country-france", "Paris"),
    ("What is the capital of Japan?", "Japan capital", "country-japan", "Tokyo"),
    ("What is the capital of Brazil?", "Brazil capital", "country-brazil", "Brasília"),
    ("What is the capital of Australia?", "Australia capital", "country-australia", "Canberra"),
    ("What is the capital of Canada?", "Canada capital", "country-canada", "Ottawa"),
    ("What is the capital of Germany?", "Germany capital", "country-germany", "Berlin"),
    ("What is the capital of India?", "India capital", "country-india", "New Delhi"),
    ("What is the capital of Kenya?", "Kenya capital", "country-kenya", "Nairobi"),
    ("What is the capital of Egypt?", "Egypt capital", "country-egypt", "Cairo"),
    ("What is the chemical symbol of gold?", "gold symbol", "element-gold", "Au"),
    ("What is the chemical symbol of silver?", "silver symbol", "element-silver", "Ag"),
    ("What is the chemical symbol of lead?", "lead symbol", "element-lead", "Pb"),
    ("What is the chemical symbol of the element mercury?", "mercury element symbol",
     "element-mercury", "Hg"),
    ("What is the chemical symbol of iron?", "iron symbol", "element-iron", "Fe"),
    ("What is the chemical symbol of sodium?", "sodium symbol", "element-sodium", "Na"),
    ("What is the chemical symbol of copper?", "copper symbol", "element-copper", "Cu"),
    ("What is the atomic number of uranium?", "uranium atomic number", "element-uranium", "92"),
    ("What is the atomic number of oxygen?", "oxygen atomic number", "element-oxygen", "8"),
    ("What is the atomic number of nitrogen?", "nitrogen atomic number", "element-nitrogen", "7"),
    ("What is the atomic number of carbon?", "carbon atomic number", "element-carbon", "6"),
    ("What is the atomic number of helium?", "helium atomic number", "element-helium", "2"),
    ("In what year was the Eiffel Tower completed?", "Eiffel Tower completed",
     "building-eiffel-tower", "1889"),
    ("In what year was the Empire State Building completed?", "Empire State Building completed",
     "building-empire-state", "1931"),
    ("In what year did the Golden Gate Bridge open?", "Golden Gate Bridge opened",
     "bridge-golden-gate", "1937"),
    ("In what year was the CN Tower completed?", "CN Tower completed", "building-cn-tower",
     "1976"),
    ("In what year was the Statue of Liberty dedicated?", "Statue of Liberty dedicated",
     "building-statue-of-liberty", "1886"),
    ("In what year was Pluto reclassified as a dwarf planet?", "Pluto reclassified dwarf planet",
     "dwarf-planet-pluto", "2006"),
    ("What is the largest moon of Saturn?", "Saturn largest moon", "planet-saturn", "Titan"),
    ("What is the largest moon of Neptune?", "Neptune largest moon", "planet-neptune", "Triton"),
    ("What is the largest moon of Pluto?", "Pluto largest moon", "dwarf-planet-pluto", "Charon"),
    ("How many known moons did Uranus have as of 2023?", "Uranus moons", "planet-uranus", "27"),
    ("Who founded Acme Widgets?", "Acme Widgets founded", "company-acme-widgets", "Dana Ortiz"),
    ("How many people does Acme Widgets employ?", "Acme Widgets employs people",
     "company-acme-widgets", "412"),
    ("What is the flagship drone of Zephyr Aerial called?", "Zephyr Aerial flagship drone",
     "company-zephyr-aerial", "Kestrel X2"),
    ("Which family founded Copperleaf Bakery?", "Copperleaf Bakery founded family",
     "company-copperleaf-bakery", "Varga"),
    ("What is the name of Bluefin Labs' research vessel?", "Bluefin Labs research vessel",
     "company-bluefin-labs", "Halcyon"),
    ("How many trucks does Northwind Freight operate?", "Northwind Freight trucks",
     "company-northwind-freight", "36"),
    ("In which town is the roasting plant of Orion Coffee Roasters?", "Orion Coffee roasting plant",
     "company-orion-coffee", "Lakeview Harbor"),
    ("How long is a marathon race, in kilometres?", "marathon race length", "fact-marathon",
     "42.195"),
    ("What is the speed of light in a vacuum, in metres per second?", "speed of light vacuum",
     "fact-speed-of-light", "299,792,458"),
    ("Which is the longest river in Asia?", "longest river Asia", "river-yangtze", "Yangtze"),
    ("What is the highest mountain in Africa?", "highest mountain Africa", "mountain-kilimanjaro",
     "Kilimanjaro"),
    ("How tall is Mount Everest according to the 2020 survey, in metres?", "Mount Everest height",
     "mountain-everest", "8,848.86"),
    ("What is the largest volcano in the Solar System?", "largest volcano Solar System",
     "planet-mars", "Olympus Mons"),
    ("Into which sea does the Volga flow?", "Volga flows", "river-volga", "Caspian Sea"),
    ("In which city is the Shanghai Tower?", "Shanghai Tower", "building-shanghai-tower",
     "Shanghai"),
    ("Who was the Great Pyramid of Giza built for?", "Great Pyramid Giza built pharaoh",
     "building-great-pyramid", "Khufu"),
    ("What is the official name of the tower that holds Big Ben?", "Big Ben tower officially named",
     "building-big-ben", "Elizabeth Tower"),
    ("What is the lowest possible temperature, in kelvin?", "absolute zero kelvin",
     "fact-absolute-zero", "0"),
    ("Which element has the highest electrical conductivity?", "highest electrical conductivity",
     "element-silver", "Silver"),
]


def found(results, doc_id, query):
    for doc in results:
        if doc["id"] == doc_id:
            return doc
    fail(f"search {query!r} did not return {doc_id} (got {[d['id'] for d in results]})")


def search_tasks(rng, count):
    if count > len(SEARCH_QUESTIONS):
        fail(f"only {len(SEARCH_QUESTIONS)} search questions for {count} tasks")
    tasks = []
    for question, query, doc_id, literal in rng.sample(SEARCH_QUESTIONS, count):
        def derive(res, query=query, doc_id=doc_id, literal=literal):
            doc = found(res[0][0]["results"], doc_id, query)
            if literal not in doc["text"]:
                fail(f"{doc_id} does not say {literal!r}: {doc['text']}")
            # Numbers without thousands separators; names as the document writes them.
            return literal.replace(",", "") if re.fullmatch(r"[\d,.]+", literal) else literal

        tasks.append({
            "kind": "search",
            "question": question,
            "solution": [[search(query)]],
            "derive": derive,
        })
    return tasks


# --- multi-tool ------------------------------------------------------------------------------

# name: (what, query, document id, regex whose group 1 is the number, unit)
FACTS = {
    "the Eiffel Tower": ("height", "Eiffel Tower height", "building-eiffel-tower",
                         r"It is ([\d,.]+) metres tall", "m"),
    "the Burj Khalifa": ("height", "Burj Khalifa tall", "building-burj-khalifa",
                         r"It is ([\d,.]+) metres tall", "m"),
    "Taipei 101": ("height", "Taipei 101 tall", "building-taipei-101", r"is ([\d,.]+) metres tall",
                   "m"),
    "the Shanghai Tower": ("height", "Shanghai Tower tall", "building-shanghai-tower",
                           r"is ([\d,.]+) metres tall", "m"),
    "the Petronas Towers": ("height", "Petronas Towers tall", "building-petronas-towers",
                            r"skyscrapers ([\d,.]+) metres tall", "m"),
    "the CN Tower": ("height", "CN Tower tall", "building-cn-tower", r"tower ([\d,.]+) metres tall",
                     "m"),
    "the Statue of Liberty": ("height", "Statue of Liberty tall", "building-statue-of-liberty",
                              r"it is ([\d,.]+) metres tall", "m"),
    "the Leaning Tower of Pisa": ("height", "Leaning Tower of Pisa tall",
                                  "building-leaning-tower-of-pisa",
                                  r"is about ([\d,.]+) metres tall", "m"),
    "the Elizabeth Tower (Big Ben)": ("height", "Big Ben tower tall", "building-big-ben",
                                      r"is ([\d,.]+) metres tall", "m"),
    "Mount Everest": ("height", "Mount Everest height", "mountain-everest",
                      r"height as ([\d,.]+) metres", "m"),
    "K2": ("height", "K2 mountain", "mountain-k2", r"at ([\d,.]+) metres", "m"),
    "Mount Kilimanjaro": ("height", "Kilimanjaro", "mountain-kilimanjaro",
                          r"at ([\d,.]+) metres", "m"),
    "Denali": ("height", "Denali", "mountain-denali", r"at ([\d,.]+) metres", "m"),
    "Mont Blanc": ("height", "Mont Blanc", "mountain-mont-blanc", r"at about ([\d,.]+) metres",
                   "m"),
    "the Nile": ("length", "Nile river length", "river-nile", r"about ([\d,.]+) km long", "km"),
    "the Amazon": ("length", "Amazon river length", "river-amazon", r"about ([\d,.]+) km long",
                   "km"),
    "the Yangtze": ("length", "Yangtze river length", "river-yangtze", r"about ([\d,.]+) km long",
                    "km"),
    "the Danube": ("length", "Danube river length", "river-danube", r"about ([\d,.]+) km long",
                   "km"),
    "the Thames": ("length", "Thames river length", "river-thames", r"about ([\d,.]+) km", "km"),
    "the Volga": ("length", "Volga river length", "river-volga", r"about ([\d,.]+) km long", "km"),
    "the Mississippi": ("length", "Mississippi river length", "river-mississippi",
                        r"about ([\d,.]+) km", "km"),
}
DIAMETERS = {
    "Mercury": ("Mercury planet diameter", "planet-mercury"),
    "Venus": ("Venus diameter", "planet-venus"),
    "Earth": ("Earth diameter", "planet-earth"),
    "Mars": ("Mars diameter", "planet-mars"),
    "Jupiter": ("Jupiter diameter", "planet-jupiter"),
    "Saturn": ("Saturn diameter", "planet-saturn"),
    "Uranus": ("Uranus diameter", "planet-uranus"),
    "Neptune": ("Neptune diameter", "planet-neptune"),
}
for _planet, (_query, _doc) in DIAMETERS.items():
    FACTS[_planet] = ("equatorial diameter", _query, _doc, r"diameter (?:is |of )([\d,.]+) km",
                      "km")
MELTING = {
    "iron": "element-iron", "copper": "element-copper", "silver": "element-silver",
    "gold": "element-gold", "lead": "element-lead", "sodium": "element-sodium",
}
for _el, _doc in MELTING.items():
    FACTS[_el] = ("melting point", f"{_el} melts", _doc, r"melts at ([\d,.]+) °C", "C")
# Fictional-company facts: (question, query, doc, regex, from unit, to unit)
COMPANY_CONVERSIONS = [
    ("How much does Acme Widgets' Model W-7 widget weigh, in kilograms?", "Model W-7 widget weighs",
     "company-acme-widgets-products", r"weighs ([\d,.]+) pounds", "lb", "kg"),
    ("How wide is Acme Widgets' Model W-7 widget, in centimetres?", "Model W-7 widget wide",
     "company-acme-widgets-products", r"is ([\d,.]+) inches wide", "in", "cm"),
    ("What is the maximum range of Zephyr Aerial's Kestrel X2 drone, in kilometres?",
     "Kestrel X2 range", "company-zephyr-aerial", r"range of ([\d,.]+) miles", "mi", "km"),
    ("How much does Zephyr Aerial's Kestrel X2 drone weigh, in pounds?", "Kestrel X2 weighs",
     "company-zephyr-aerial", r"weighs ([\d,.]+) kilograms", "kg", "lb"),
    ("How long is Northwind Freight's main warehouse, in metres?", "Northwind Freight warehouse",
     "company-northwind-freight", r"warehouse is ([\d,.]+) feet long", "ft", "m"),
    ("How many pounds can Northwind Freight's largest truck carry?", "Northwind Freight truck carries",
     "company-northwind-freight", r"up to ([\d,.]+) tonnes", "t", "lb"),
    ("What is the range of Bluefin Labs' research vessel, in kilometres?", "Halcyon range",
     "company-bluefin-labs", r"range of ([\d,.]+) nautical miles", "nmi", "km"),
    ("How long is Bluefin Labs' research vessel, in feet?", "Halcyon vessel long",
     "company-bluefin-labs", r"is ([\d,.]+) metres long", "m", "ft"),
    ("How many pounds of beans does Orion Coffee Roasters roast a week?", "Orion Coffee roasts beans",
     "company-orion-coffee", r"roasts ([\d,.]+) kilograms", "kg", "lb"),
    ("At what temperature, in degrees Fahrenheit, does Orion Coffee Roasters roast each batch?",
     "Orion Coffee batch roasts", "company-orion-coffee", r"at ([\d,.]+) °C", "C", "F"),
    ("At what temperature, in degrees Fahrenheit, are Copperleaf Bakery's ovens heated?",
     "Copperleaf Bakery ovens heated", "company-copperleaf-bakery", r"heated to ([\d,.]+) °C",
     "C", "F"),
    ("How long is a marathon race, in miles?", "marathon race length", "fact-marathon",
     r"is ([\d,.]+) kilometres long", "km", "mi"),
]


def fact_number(results, name):
    _, query, doc_id, pattern, _ = FACTS[name]
    return doc_number(results, query, doc_id, pattern)


def doc_number(results, query, doc_id, pattern):
    doc = found(results, doc_id, query)
    match = re.search(pattern, doc["text"])
    if not match:
        fail(f"{doc_id}: {pattern!r} finds nothing in {doc['text']!r}")
    return Decimal(match.group(1).replace(",", "").rstrip("."))


def corpus_number(doc_id, pattern):
    """The number a document states, read from the corpus file (to plan the later calls; the
    derivation re-reads it from the search results and fails if they differ)."""
    with open(os.path.join(ROOT, "tools", "search", "data", "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if doc["id"] == doc_id:
                match = re.search(pattern, doc["text"])
                if not match:
                    fail(f"{doc_id}: {pattern!r} finds nothing in {doc['text']!r}")
                return Decimal(match.group(1).replace(",", "").rstrip("."))
    fail(f"no document {doc_id} in the corpus")


def fact(name):
    _, _, doc_id, pattern, _ = FACTS[name]
    return corpus_number(doc_id, pattern)


def multi_difference(rng, names):
    a, b = rng.sample(names, 2)
    what, unit = FACTS[a][0], FACTS[a][4]
    va, vb = fact(a), fact(b)
    if va < vb:
        a, b, va, vb = b, a, vb, va
    expr = f"{plain(va)}-{plain(vb)}"
    exact = py_eval(expr)
    unit_word = {"m": "metres", "km": "kilometres"}[unit]

    def derive(res):
        if fact_number(res[0][0]["results"], a) != va or fact_number(res[0][1]["results"], b) != vb:
            fail(f"search results disagree with the corpus for {a} / {b}")
        return numeric_answer(last_value(res), exact)

    adjective = {"height": "taller", "length": "longer"}[what]
    return {
        "kind": "multi_tool",
        "question": f"Look up the {what}s of {a} and {b}. By how many {unit_word} is {a} "
                    f"{adjective} than {b}?" + rounding_note(exact),
        "solution": [[search(FACTS[a][1]), search(FACTS[b][1])], [calc(expr)]],
        "derive": derive,
    }


def multi_ratio(rng, names, what_phrase):
    a, b = rng.sample(names, 2)
    va, vb = fact(a), fact(b)
    if va < vb:
        a, b, va, vb = b, a, vb, va
    expr = f"{plain(va)}/{plain(vb)}"
    exact = py_eval(expr)
    if not acceptable(exact):
        return None

    def derive(res):
        if fact_number(res[0][0]["results"], a) != va or fact_number(res[0][1]["results"], b) != vb:
            fail(f"search results disagree with the corpus for {a} / {b}")
        return numeric_answer(last_value(res), exact)

    return {
        "kind": "multi_tool",
        "question": f"How many times {what_phrase} is {a} than {b}?" + rounding_note(exact),
        "solution": [[search(FACTS[a][1]), search(FACTS[b][1])], [calc(expr)]],
        "derive": derive,
    }


def multi_convert_fact(rng, names, to):
    a = rng.choice(names)
    what, query, _, _, unit = FACTS[a]
    va = fact(a)
    exact = py_convert(float(va), unit, to)
    if not acceptable(exact):
        return None

    def derive(res):
        if fact_number(res[0][0]["results"], a) != va:
            fail(f"search results disagree with the corpus for {a}")
        return numeric_answer(last_value(res), exact)

    return {
        "kind": "multi_tool",
        "question": f"What is the {what} of {a} in {UNIT_NAMES[to]}?" + rounding_note(exact),
        "solution": [[search(query)], [convert(num(va), unit, to)]],
        "derive": derive,
    }


def multi_company(rng, entry):
    question, query, doc_id, pattern, frm, to = entry
    va = corpus_number(doc_id, pattern)
    exact = py_convert(float(va), frm, to)
    if not acceptable(exact):
        fail(f"company conversion {question!r} sits on a rounding tie")

    def derive(res):
        if doc_number(res[0][0]["results"], query, doc_id, pattern) != va:
            fail(f"search results disagree with the corpus for {doc_id}")
        return numeric_answer(last_value(res), exact)

    return {
        "kind": "multi_tool",
        "question": question + rounding_note(exact),
        "solution": [[search(query)], [convert(num(va), frm, to)]],
        "derive": derive,
    }


def multi_store_sum(rng, names):
    a, b = rng.sample(names, 2)
    what = FACTS[a][0]
    va, vb = fact(a), fact(b)
    expr = f"{plain(va)}+{plain(vb)}"
    exact = py_eval(expr)

    def derive(res):
        if fact_number(res[0][0]["results"], a) != va or fact_number(res[0][1]["results"], b) != vb:
            fail(f"search results disagree with the corpus for {a} / {b}")
        if [dec(r["value"]) for r in res[2]] != [va, vb]:
            fail(f"kv read back {res[2]}, expected {va}, {vb}")
        return numeric_answer(last_value(res), exact)

    return {
        "kind": "multi_tool",
        "question": f"Look up the {what} of {a} and store it under the key \"x\", and the {what} "
                    f"of {b} under the key \"y\". Then read both back from the store and add them "
                    "with the calculator. What is x + y?" + rounding_note(exact),
        "solution": [[search(FACTS[a][1]), search(FACTS[b][1])],
                     [kv("set", "x", num(va)), kv("set", "y", num(vb))],
                     [kv("get", "x"), kv("get", "y")], [calc(expr)]],
        "derive": derive,
    }


def multi_tasks(rng, count):
    heights = [n for n, f in FACTS.items() if f[0] == "height"]
    rivers = [n for n, f in FACTS.items() if f[0] == "length"]
    planets = list(DIAMETERS)
    metals = list(MELTING)
    makers = [
        lambda: multi_difference(rng, heights),
        lambda: multi_convert_fact(rng, heights, "ft"),
        lambda: multi_convert_fact(rng, rivers, "mi"),
        lambda: multi_ratio(rng, rivers, "longer"),
        lambda: multi_convert_fact(rng, metals, rng.choice(["F", "K"])),
        lambda: multi_ratio(rng, planets, "wider (equatorial diameter)"),
        lambda: multi_store_sum(rng, rng.choice([heights, rivers])),
        lambda: multi_difference(rng, rivers),
    ]
    tasks = [multi_company(rng, e) for e in COMPANY_CONVERSIONS]
    seen = {t["question"] for t in tasks}
    i = 0
    attempts = 0
    while len(tasks) < count:
        attempts += 1
        if attempts > 100 * count:
            fail(f"multi_tool: only {len(tasks)} distinct tasks for {count}")
        task = makers[i % len(makers)]()
        if task is None or task["question"] in seen:
            continue
        i += 1
        seen.add(task["question"])
        tasks.append(task)
    return tasks


# ---------------------------------------------------------------------------------------------
# Running


def toolenv_command():
    if os.environ.get("TOOLENV"):
        return [os.environ["TOOLENV"]]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    binary = os.path.join(target, "release", "toolenv")
    if os.access(binary, os.X_OK):
        return [binary]
    print(f"make-tasks: {binary} not found, using cargo run --release", file=sys.stderr)
    return ["cargo", "run", "--quiet", "--release", "-p", "toolenv", "--"]


def run_solutions(tasks):
    """Runs every task's solution in one batch, one episode per task; returns each task's
    results as turns of result values."""
    lines, where = [], []
    for t, task in enumerate(tasks):
        for k, turn in enumerate(task["solution"]):
            for name, params in turn:
                lines.append(json.dumps({"name": name, "arguments": params, "episode": task["id"]}))
                where.append((t, k))
    proc = subprocess.run(
        toolenv_command() + ["batch", "--config", CONFIG],
        input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=ROOT, check=False,
    )
    if proc.returncode != 0:
        fail(f"toolenv batch exited {proc.returncode}: {proc.stderr.strip()}")
    out = proc.stdout.splitlines()
    if len(out) != len(lines):
        fail(f"toolenv batch returned {len(out)} lines for {len(lines)} calls")
    results = [[[] for _ in task["solution"]] for task in tasks]
    for (t, k), request, response in zip(where, lines, out):
        reply = json.loads(response, parse_float=Decimal)
        if "ok" not in reply:
            fail(f"{tasks[t]['id']}: call {request} failed: {reply}")
        results[t][k].append(reply["ok"])
    return results


PREFIX = {"arithmetic": "calc", "unit_conversion": "conv", "kv_store": "kv", "search": "search",
          "multi_tool": "multi"}
COUNTS = {"arithmetic": 60, "unit_conversion": 50, "kv_store": 45, "search": 45, "multi_tool": 50}


def build(seed):
    rng = random.Random(seed)
    drafts = (arithmetic_tasks(rng, COUNTS["arithmetic"])
              + conversion_tasks(rng, COUNTS["unit_conversion"])
              + kv_tasks(rng, COUNTS["kv_store"])
              + search_tasks(rng, COUNTS["search"])
              + multi_tasks(rng, COUNTS["multi_tool"]))
    counters = {}
    for task in drafts:
        counters[task["kind"]] = counters.get(task["kind"], 0) + 1
        task["id"] = f"{PREFIX[task['kind']]}-{counters[task['kind']]:04d}"
    results = run_solutions(drafts)
    rows = []
    for task, res in zip(drafts, results):
        if "check" in task:
            task["check"](res)
        answer = task["derive"](res)
        if not isinstance(answer, str) or not answer.strip():
            fail(f"{task['id']}: no answer derived")
        tools = []
        for turn in task["solution"]:
            for name, _ in turn:
                if name not in tools:
                    tools.append(name)
        rows.append({
            "id": task["id"],
            "kind": task["kind"],
            "question": task["question"],
            "answer": answer,
            "tools": tools,
            "solution": [[{"name": n, "parameters": p} for n, p in turn]
                         for turn in task["solution"]],
        })
    # Stratified split: the same fraction of each kind goes to test.
    train, test = [], []
    split_rng = random.Random(seed + 1)
    for kind in PREFIX:
        of_kind = [r for r in rows if r["kind"] == kind]
        n_test = round(len(of_kind) * TEST_FRACTION)
        test_ids = {r["id"] for r in split_rng.sample(of_kind, n_test)}
        for r in of_kind:
            (test if r["id"] in test_ids else train).append(r)
    return train, test


def render(rows):
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)


def main():
    parser = argparse.ArgumentParser(description="Build the executable task set.")
    parser.add_argument("--check", action="store_true",
                        help="fail if the files in --out differ from what the generator builds")
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"seed of the draw (default {SEED}: the committed set)")
    parser.add_argument("--out", default=OUT_DIR,
                        help="directory for train.jsonl and test.jsonl (default env/data/tasks)")
    args = parser.parse_args()
    train, test = build(args.seed)
    outputs = {"train.jsonl": render(train), "test.jsonl": render(test)}
    if args.check:
        for name, text in outputs.items():
            path = os.path.join(args.out, name)
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == text
            except OSError as e:
                fail(f"{path}: {e}")
            if not same:
                fail(f"{path} differs from what the generator builds: rerun it")
        print(f"make-tasks: {args.out} is up to date")
        return
    os.makedirs(args.out, exist_ok=True)
    for name, text in outputs.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write(text)
    for split, rows in (("train", train), ("test", test)):
        counts = {}
        for r in rows:
            counts[r["kind"]] = counts.get(r["kind"], 0) + 1
        print(f"{split}: {len(rows)} tasks {counts}")


if __name__ == "__main__":
    main()
