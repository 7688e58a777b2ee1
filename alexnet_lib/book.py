"""Small helpers the book's notebooks share: run profile, Markdown tables, glued numbers, recorded results, checks."""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import re

import torch
from IPython.display import display

PROFILE_ENV = "ALEXNET_PROFILE"
PROFILES = ("quick", "full")


def profile() -> str:
    """``"quick"`` (small runs that finish on a laptop CPU) or ``"full"``.

    ``ALEXNET_PROFILE`` decides when set; otherwise CI and machines without a
    GPU get ``"quick"``, and a CUDA machine gets ``"full"``.
    """
    chosen = os.environ.get(PROFILE_ENV)
    if chosen:
        if chosen not in PROFILES:
            raise ValueError(f"{PROFILE_ENV} must be one of {PROFILES}, got {chosen!r}")
        return chosen
    if os.environ.get("CI") or not torch.cuda.is_available():
        return "quick"
    return "full"


def is_quick() -> bool:
    return profile() == "quick"


# Tests only: with the full profile, run its code at the tiny sizes (see sizes).
TINY_ENV = "ALEXNET_TINY"


def sizes(quick, full, tiny=None):
    """A notebook's run sizes: ``quick`` under the quick profile, ``full`` under the full one.

    The full profile is what a GPU reader runs, and nobody runs it on this book's CPU.  With
    ``ALEXNET_TINY=1`` (set by tests/test_notebooks_full.py) the full profile's code runs, every branch
    of it, at ``tiny`` (default ``quick``) instead, so that its path has run before a reader's does.
    """
    if profile() == "quick":
        return quick
    if os.environ.get(TINY_ENV) == "1":
        return quick if tiny is None else tiny
    return full


# A shell command inside a sentence: "python -m alexnet_lib ..." or "torchrun ...", up to the next ";" or ")"
# or the end of the sentence.  A sentence's full stop is not part of the command.
_COMMAND = re.compile(r"\b(?:python -m|torchrun) [^;()`]*?(?=\.?(?:\s*$|[;)]|\.\s))")


def code_spans(text: str) -> str:
    """``text`` with every shell command in it put in backticks.

    Rendered as code, a command keeps its characters: as prose, Sphinx's smart quotes would turn its
    "--" into a dash, and a reader who copies it would get a command that fails.
    """
    if "`" in text:  # already marked up by hand
        return text
    return _COMMAND.sub(lambda match: f"`{match.group(0)}`", text)


def show_table(header: list[str], rows: list[list], align: str | None = None) -> None:
    """Display a Markdown table (``align``: one "l" or "r" per column, default all right).

    The book renders the Markdown; nbval compares the same text.  Shell commands in a cell are shown as
    code (:func:`code_spans`).
    """
    align = align or "r" * len(header)
    if len(align) != len(header) or any(len(row) != len(header) for row in rows):
        raise ValueError("header, align and every row need the same number of columns")
    rule = {"l": ":--", "r": "--:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(code_spans(str(cell)) for cell in row) + " |" for row in rows]
    text = "\n".join(lines)
    display({"text/markdown": text, "text/plain": text}, raw=True)


def glue_number(name: str, value: float, digits: int = 4) -> None:
    """``myst_nb.glue`` a number rounded to ``digits`` significant digits, so reruns store the same text."""
    from myst_nb import glue

    glue(name, float(f"{value:.{digits}g}"), display=False)


def glue_comparison(prefix: str, summary: dict, paper_gap: float, key: str = "ten_patch_top1") -> None:
    """Glue a two-arm experiment's test errors (``experiments._arm_comparison``'s summary), in percent, as
    ``{prefix}_NAME``.

    NAME: ``epochs``, ``seeds`` (per arm); ``paper_mean``, ``paper_std`` for the paper's choice (the first arm) and
    ``other_mean``, ``other_std`` for the second; ``difference`` (other minus paper, points: positive when the
    paper's choice helps), ``low`` and ``high`` (its 95% interval), ``p`` (Welch's test), ``verdict``
    ("significant" or "not significant", at 5%), ``detectable`` (the smallest difference these seeds detect
    with 80% power), ``direction`` (whether the mean difference goes the paper's way) and ``covers_paper``
    ("includes" or "excludes": whether the interval holds ``paper_gap``, the paper's own difference, as a fraction).
    Each arm needs two seeds or more.
    """
    from myst_nb import glue

    paper, other = (summary["test_error"][arm][key] for arm in summary["arms"])
    c = summary[f"{key}_difference"]
    d, detectable = c["difference"], c["detectable_difference"]["difference"]
    if d["ci95"] is None or detectable is None:
        raise ValueError(f"{prefix}: no interval: {d.get('reason') or c['detectable_difference'].get('reason')}")
    numbers = {"epochs": summary["epochs"], "seeds": len(summary["seeds"]),
               "paper_mean": 100 * paper["mean"], "paper_std": 100 * paper["std"],
               "other_mean": 100 * other["mean"], "other_std": 100 * other["std"],
               "difference": 100 * d["difference"], "low": 100 * d["ci95"][0], "high": 100 * d["ci95"][1],
               "p": d["p_value"], "detectable": 100 * detectable}
    for name, value in numbers.items():
        glue_number(f"{prefix}_{name}", value, digits=3)
    glue(f"{prefix}_verdict", "significant" if d["significant"] else "not significant", display=False)
    glue(f"{prefix}_direction", "the paper's direction" if d["difference"] > 0 else "against the paper's direction",
         display=False)
    glue(f"{prefix}_covers_paper", "includes" if d["ci95"][0] <= paper_gap <= d["ci95"][1] else "excludes",
         display=False)


def percent_text(d: dict) -> str:
    """A :func:`stats.describe` of fractions as "31.9 ± 0.7 (n=3)", in percent; "–" with no value."""
    if d["n"] == 0:
        return "–"
    spread = f" ± {100 * d['std']:.1f}" if d["std"] is not None else ""
    return f"{100 * d['mean']:.1f}{spread} (n={d['n']})"


def glue_dropout_same_lr(results: dict) -> dict[str, dict[str, dict]]:
    """Glue the dropout_same_lr experiment's finished runs for chapter 06, and return them described.

    Returns arm -> each of ``experiments.DROPOUT_RUN_VALUES`` -> :func:`stats.describe` over the finished runs
    (a results file still growing has some).  Glues, in percent (means over the finished seeds):
    ``same_lr_train_0``/``_5`` (final training error, no dropout / dropout), ``same_lr_final_*`` (final test
    error), ``same_lr_early_*`` (test error at the epoch of lowest validation error), and three sentences:
    ``same_lr_status`` (how many seeds have finished), ``same_lr_best`` (the lowest test error of any epoch in each
    arm, and which is lower) and ``same_lr_difference`` (the final test errors' difference with its 95% interval).
    """
    from myst_nb import glue

    from . import stats
    from .experiments import DROPOUT_RUN_VALUES, dropout_run_values, runs_by_arm

    finished = {arm: [dropout_run_values(run) for run in runs if run.get("complete", True) and run["diverged"] is None]
                for arm, runs in runs_by_arm(results).items()}
    described = {arm: {key: stats.describe([v[key] for v in values]) for key in DROPOUT_RUN_VALUES}
                 for arm, values in finished.items()}
    planned, done = len(results["provenance"]["seeds"]), min(len(v) for v in finished.values())
    status = (f"All {planned} seeds of each arm have finished." if results["complete"] else
              f"{done} of the {planned} seeds of each arm {'has' if done == 1 else 'have'} finished so far; the "
              "experiment is still running, and this page shows what is recorded.")
    glue("same_lr_status", status, display=False)
    if done == 0:
        raise ValueError("dropout_same_lr: no arm has a finished run yet")
    with_dropout, without = described["dropout 0.5"], described["no dropout"]
    for key, name in (("final_clean_train_error", "train"), ("final_test_error", "final"),
                      ("test_error_at_best_validation", "early")):
        glue_number(f"same_lr_{name}_5", 100 * with_dropout[key]["mean"], digits=3)
        glue_number(f"same_lr_{name}_0", 100 * without[key]["mean"], digits=3)
    best_5, best_0 = (100 * d["best_test_error"]["mean"] for d in (with_dropout, without))
    lower = "lower without dropout" if best_0 < best_5 else "lower with dropout" if best_5 < best_0 else "the same"
    glue("same_lr_best", f"The lowest test error of any epoch is {lower}: {best_0:.1f}% without dropout and "
         f"{best_5:.1f}% with it, minima picked on the test set itself, which flatter both arms.", display=False)
    c = stats.difference(without["final_test_error"]["values"], with_dropout["final_test_error"]["values"])
    if c["ci95"] is None:
        sentence = "With one finished seed per arm the final test errors cannot be told apart from noise yet."
    else:
        low, high = (100 * x for x in c["ci95"])
        noise = "larger than the noise of" if c["significant"] else "within the noise of"
        sentence = (f"Without dropout minus with, the final test errors differ by {100 * c['difference']:+.1f} "
                    f"points (95% interval {low:+.1f} to {high:+.1f}; {without['final_test_error']['n']} and "
                    f"{with_dropout['final_test_error']['n']} seeds): {noise} so few seeds.")
    glue("same_lr_difference", sentence, display=False)
    return described


ACTIVATION_NAMES = {"relu": "ReLU", "tanh": "tanh"}


def _activation_name(activation: str) -> str:
    """An activation as prose names it ("relu" -> "ReLU"); one without a prose name as it is."""
    return ACTIVATION_NAMES.get(activation, activation)


def glue_relu_tanh_paper(results: dict) -> list[list]:
    """Glue the relu_tanh_paper experiment as far as it is recorded, for chapter 03; return its sweep's table rows.

    Rows, by activation and rate: activation, learning rate, epochs to the target (or why not), last clean training
    error (%).  Glues ``fig1_status`` (a sentence: which parts have run) and ``fig1_result`` (the main runs' epochs
    to the target per activation and, once both activations have two or more, the ratio with its 95% interval, or
    a lower bound where tanh runs missed the target) and ``fig1_repeat`` (a sweep run and a main run of the same
    settings side by side: what rounding alone does; empty until both exist).
    """
    from myst_nb import glue

    from . import stats
    from .experiments import (CLEAN_TRAIN_ERROR, TARGET_TRAIN_ERROR, epochs_to, epochs_to_target_text,
                              ratio_lower_bound, runs_by_arm, sweep_runs)

    target = 100 * TARGET_TRAIN_ERROR
    rows, status, sweeps = [], [], sweep_runs(results)
    for activation, runs in sweeps.items():
        for lr, run in sorted(runs.items()):
            reached = epochs_to(run, TARGET_TRAIN_ERROR, CLEAN_TRAIN_ERROR)
            if reached is not None:
                epochs = str(reached)
            elif not run.get("complete", True):
                epochs = f"running ({len(run['history'])} epochs so far)"
            else:
                epochs = "diverged" if run["diverged"] else f"not within {len(run['history'])}"
            last = f"{100 * run['history'][-1][CLEAN_TRAIN_ERROR]:.1f}" if run["history"] else "–"
            rows.append([_activation_name(activation), f"{lr:g}", epochs, last])
        rates = f"{len(runs)} rate" + ("s" if len(runs) > 1 else "")
        status.append(f"{_activation_name(activation)}'s sweep has tried {rates}")
    arms = runs_by_arm(results)
    finished = {activation: [run for run in runs if run.get("complete", True)] for activation, runs in arms.items()}
    planned = len(results["provenance"]["seeds"])
    status.extend(f"{len(runs)} of {planned} {_activation_name(activation)} runs at its chosen rate "
                  f"{'has' if len(runs) == 1 else 'have'} finished" for activation, runs in finished.items())
    text = ("In all, " if results["complete"] else "So far ") + ", ".join(status) + "." if status else \
        "Nothing is recorded yet."
    glue("fig1_status", text + ("" if results["complete"] else " The experiment is still running; this page shows "
                                "what is recorded."), display=False)
    reached = {a: [epochs_to(run, TARGET_TRAIN_ERROR, CLEAN_TRAIN_ERROR) for run in runs]
               for a, runs in finished.items()}
    parts = [f"the {_activation_name(a)} runs {epochs_to_target_text(v, runs[0]['config']['epochs'], target)}"
             for (a, v), runs in zip(reached.items(), finished.values()) if v]
    joined = "; ".join(parts)
    result = joined[0].upper() + joined[1:] + "." if parts else "No run at a chosen rate has finished yet."
    relu, tanh = reached.get("relu", []), reached.get("tanh", [])
    if len(relu) >= 2 and len(tanh) >= 2 and None not in relu + tanh:
        r = stats.ratio(tanh, relu)
        interval = (f" (95% interval {r['ci95'][0]:.1f} to {r['ci95'][1]:.1f})" if r["ci95"] else
                    f" (no 95% interval: {r['reason']})")
        result += f" On average tanh needed {r['ratio']:.1f} times as many epochs as ReLU{interval}."
        paper = results.get("paper", {}).get("speedup")
        if r["ci95"] and paper is not None:
            low, high = r["ci95"]
            where = "inside" if low <= paper <= high else ("above" if paper > high else "below")
            result += f" The paper's {paper:g} lies {where} that interval."
    elif relu and tanh and None not in relu:
        cap = finished["tanh"][0]["config"]["epochs"]
        result += (f" Counting the tanh runs that missed it as {cap} epochs, tanh needed at least "
                   f"{ratio_lower_bound(tanh, relu, cap):.1f} times as many epochs as ReLU.")
    glue("fig1_result", result, display=False)
    glue("fig1_repeat", _figure1_repeat_text(sweeps, finished), display=False)
    return rows


def _figure1_repeat_text(sweeps: dict[str, dict[float, dict]], finished: dict[str, list[dict]]) -> str:
    """What a sweep's run at the chosen rate and the seed-0 run at that rate (same settings) show, in a sentence.

    They may differ in the number of threads, which changes the order in which the numbers are added."""
    from .experiments import CLEAN_TRAIN_ERROR

    pairs = []
    for activation, runs in finished.items():
        main = next((run for run in runs if run["config"]["seed"] == 0), None)
        sweep = sweeps.get(activation, {}).get(main["config"]["lr"]) if main else None
        if sweep is None or sweep["config"]["seed"] != 0 or not sweep["history"]:
            continue
        epoch = min(len(sweep["history"]), len(main["history"]))
        errors = [100 * run["history"][epoch - 1][CLEAN_TRAIN_ERROR] for run in (sweep, main)]
        threads = [run["provenance"]["hardware"]["torch_threads"] for run in (sweep, main)]
        pairs.append(f"{errors[0]:.1f}% against {errors[1]:.1f}% after {epoch} epochs for "
                     f"{_activation_name(activation)} ({threads[0]} and {threads[1]} threads)")
    if not pairs:
        return ""
    return ("Each sweep's run at the chosen rate and the seed-0 run at that rate share every setting, the seed "
            "included; only the number of threads may differ, and with it the order in which the numbers are added. "
            "Their training errors: " + "; ".join(pairs) + ".")


def execution_seconds(path: str | pathlib.Path) -> float | None:
    """How long the code cells of a stored notebook ran when it was last executed, in seconds.

    From the start and end times that Jupyter writes into each executed cell's metadata
    (``execution``: ``iopub.execute_input``, ``shell.execute_reply``); None when no cell has them.
    """
    def when(stamp: str) -> datetime.datetime:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # Python 3.10 reads no "Z"

    total, timed = 0.0, False
    for cell in json.loads(pathlib.Path(path).read_text(encoding="utf-8"))["cells"]:
        times = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in times and "shell.execute_reply" in times:
            total += (when(times["shell.execute_reply"]) - when(times["iopub.execute_input"])).total_seconds()
            timed = True
    return total if timed else None


def run_time_text(seconds: float) -> str:
    """A chapter's run time in words, for its header: "about 40 seconds", "about 6 minutes"."""
    if seconds < 90:
        return f"about {max(10, round(seconds, -1)):.0f} seconds"
    return f"about {round(seconds / 60):.0f} minutes"


def glue_chapter_times(folder: str | pathlib.Path = ".") -> dict[str, float]:
    """How long each chapter's code cells ran when it was last executed, in seconds, by chapter number ("07").

    Measured, not typed: :func:`execution_seconds` of every stored ``NN_*.ipynb`` in ``folder`` (chapters
    without stored times are left out). Each chapter's time is also glued (``myst_nb.glue``) in words as
    ``run_time_NN``, which the chapter's header pastes from chapter 00 (:func:`run_time_text`).
    """
    from myst_nb import glue

    chapters = sorted(pathlib.Path(folder).glob("[0-9][0-9]_*.ipynb"))
    seconds = {path.name[:2]: execution_seconds(path) for path in chapters}
    seconds = {chapter: value for chapter, value in seconds.items() if value is not None}
    for chapter, value in seconds.items():
        glue(f"run_time_{chapter}", run_time_text(value), display=False)
    return seconds


def results_dir(start: str | pathlib.Path | None = None) -> pathlib.Path | None:
    """The checkout's ``results/`` folder, found by walking up from ``start`` (default: the working directory)."""
    here = pathlib.Path(start or pathlib.Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "results").is_dir():
            return folder / "results"
    return None


def load_results(name: str, start: str | pathlib.Path | None = None) -> dict | None:
    """``results/NAME.json`` as a dict, or None when it has not been recorded (or this is not a checkout)."""
    folder = results_dir(start)
    path = folder / f"{name}.json" if folder else None
    return json.loads(path.read_text()) if path and path.exists() else None


def check_close(numbers: dict[str, tuple[float, float]], *, abs_tol: float = 0.0, rel_tol: float = 0.0) -> None:
    """Raise AssertionError unless every (measured, stored) pair of ``numbers`` agrees to within the tolerances.

    For the results of training runs, compared with the run stored in the book (the tolerances as
    in :func:`math.isclose`).  Their printed digits are not compared: another CPU, or another
    number of threads, adds the same numbers in another order, and a run drifts off in the third or
    fourth digit.
    """
    off = [f"{name} = {measured:.6g}, stored {stored:.6g}" for name, (measured, stored) in numbers.items()
           if not math.isclose(measured, stored, rel_tol=rel_tol, abs_tol=abs_tol)]
    if off:
        raise AssertionError(f"not within abs_tol={abs_tol:g}, rel_tol={rel_tol:g} of the stored run: " + "; ".join(off))
