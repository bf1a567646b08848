"""Prints BFCL's multi-turn ground truth as JSON calls: for each entry id, per turn, the list of
`{"name", "parameters"}` objects that BFCL's call strings (`cd(folder='x')`, `sort('f.pdf')`)
stand for, positional arguments named by the function docs' parameter order. tests/all/bfcl.rs
plays a model that answers with these, to check that the ground truth scores right.

    python3 tests/all/bfcl_ground_truth_calls.py > calls.json
"""

import ast
import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / ".bfcl" / "bfcl_eval" / "data"
CATEGORIES = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]


def main():
    params = {}
    for f in (DATA / "multi_turn_func_doc").glob("*.json"):
        for line in open(f):
            if line.strip():
                doc = json.loads(line)
                params[doc["name"]] = list(doc["parameters"].get("properties", {}))
    out = {}
    for category in CATEGORIES:
        for line in open(DATA / "possible_answer" / f"BFCL_v4_{category}.json"):
            entry = json.loads(line)
            turns = []
            for turn in entry["ground_truth"]:
                calls = []
                for text in turn:
                    call = ast.parse(text, mode="eval").body
                    name = call.func.id
                    args = {params[name][i]: ast.literal_eval(a) for i, a in enumerate(call.args)}
                    args.update({k.arg: ast.literal_eval(k.value) for k in call.keywords})
                    calls.append({"name": name, "parameters": args})
                turns.append(calls)
            out[entry["id"]] = turns
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
