"""BFCL's multi-turn backends (GorillaFileSystem, MathAPI, MessageAPI, TwitterAPI, TicketAPI,
TradingBot, TravelAPI, VehicleControlAPI) as one componentize-py component serving many tools.

The tool's name (argv[0]) says what to do:
- a backend method (`cd`, `ls`, `get_stock_info`, …): the model's call. Its JSON arguments are
  written as the Python call BFCL's handlers write (`name(k=repr(v), …)`) and run by bfcl-eval's
  own `execute_multi_turn_func_call` on the episode's instances, so results read exactly as in
  BFCL (`json.dumps` of a dict, `str` of anything else, `Error during execution: …`).
- `bfcl_ground_truth`: `{"calls": ["cd(folder='x')", …]}`, BFCL's ground-truth call strings, run
  the same way on a second set of instances; returns the results.
- `bfcl_check_state`: bfcl-eval's `state_checker` between the two sets.

The episode's `/state` (shared by all these tools) holds `scenario.json`, written by the host
before the first call (`involved_classes`, `initial_config`, `long_context`, `id`), and the
pickled instances of each set, so state persists between calls as BFCL's in-process instances
would. Every backend module is imported here, at build time: the component has no file system.
"""

import _strptime  # noqa: F401 - datetime.strptime imports it on first use, which needs a file system
import json
import os
import pickle
import re
import sys

import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.gorilla_file_system  # noqa: F401
import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.math_api  # noqa: F401
import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.message_api  # noqa: F401
import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.posting_api  # noqa: F401
import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.ticket_api  # noqa: F401
import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.trading_bot  # noqa: F401
import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.travel_booking  # noqa: F401
import bfcl_eval.eval_checker.multi_turn_eval.func_source_code.vehicle_control  # noqa: F401
from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import state_checker

STATE = "/state"
MODEL = "toolenv"


def _fail(message):
    sys.stdout.flush()
    sys.stderr.write(message[:1000] + "\n")
    sys.stderr.flush()
    os._exit(1)


def _scenario():
    try:
        with open(f"{STATE}/scenario.json") as f:
            return json.load(f)
    except OSError:
        _fail("no BFCL scenario in /state: the host writes scenario.json before the first call")


def _instance_name(model_name, entry_id, class_name):
    # As execute_multi_turn_func_call names the globals it keeps its instances in.
    return re.sub(r"[-./:]", "_", f"{model_name}_eval_{entry_id}_{class_name}_instance")


def _execute(calls, kind, scenario):
    """Runs BFCL call strings on the `kind` set of instances, restored from and saved to /state."""
    model_name = MODEL if kind == "model" else MODEL + "_ground_truth"
    path = f"{STATE}/{kind}.pkl"
    names = {c: _instance_name(model_name, scenario["id"], c) for c in scenario["involved_classes"]}
    if os.path.exists(path):
        with open(path, "rb") as f:
            saved = pickle.load(f)
        for class_name, instance in saved.items():
            vars(multi_turn_utils)[names[class_name]] = instance
    results, instances = multi_turn_utils.execute_multi_turn_func_call(
        func_call_list=calls,
        initial_config=scenario["initial_config"],
        involved_classes=scenario["involved_classes"],
        model_name=model_name,
        test_entry_id=scenario["id"],
        long_context=scenario.get("long_context", False),
        is_evaL_run=True,
    )
    with open(path + ".tmp", "wb") as f:
        pickle.dump(instances, f)
    os.replace(path + ".tmp", path)
    return results, instances


def _load(kind):
    path = f"{STATE}/{kind}.pkl"
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


class Run:
    """The `wasi:cli/run` export: one call."""

    def run(self) -> None:
        name = os.path.basename(sys.argv[0]) if sys.argv else ""
        try:
            args = json.loads(sys.stdin.buffer.read() or b"{}")
        except ValueError as e:
            _fail(f"arguments are not JSON: {e}")
        if not isinstance(args, dict):
            _fail("arguments must be a JSON object")
        scenario = _scenario()
        if name == "bfcl_ground_truth":
            calls = args.get("calls")
            if not isinstance(calls, list) or not all(isinstance(c, str) for c in calls):
                _fail("calls: expected a list of call strings")
            out, _ = _execute(calls, "ground_truth", scenario)
        elif name == "bfcl_check_state":
            model, truth = _load("model"), _load("ground_truth")
            if truth is None:
                _fail("no ground-truth instances yet: run bfcl_ground_truth first")
            if model is None:
                # The model called nothing so far: its instances are the initial ones.
                _, model = _execute([], "model", scenario)
            result = state_checker(model, truth)
            out = {"valid": result["valid"], "error_type": result.get("error_type")}
            if not result["valid"]:
                out["differences"] = repr(result["details"]["differences"])[:2000]
        else:
            # BFCL's handlers write a decoded call as `name(k=repr(v), …)`.
            call = f"{name}({','.join(f'{k}={v!r}' for k, v in args.items())})"
            results, _ = _execute([call], "model", scenario)
            out = results[0]
        sys.stdout.write(json.dumps(out, ensure_ascii=False))
        sys.stdout.flush()
