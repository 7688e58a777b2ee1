"""alexnet_lib.book: the notebooks' run profile, Markdown tables and recorded results."""

import json

import pytest

from alexnet_lib import runtime
from alexnet_lib.book import (check_close, code_spans, execution_seconds, glue_comparison, glue_chapter_times,
                              glue_dropout_same_lr, glue_relu_tanh_paper, is_quick, load_results, percent_text, sizes,
                              profile, results_dir, run_time_text, show_table)


def test_profile_follows_the_environment_then_the_machine(monkeypatch):
    monkeypatch.setenv("ALEXNET_PROFILE", "full")
    assert profile() == "full" and not is_quick()
    monkeypatch.setenv("ALEXNET_PROFILE", "huge")
    with pytest.raises(ValueError, match=r"ALEXNET_PROFILE must be one of \('quick', 'full'\), got 'huge'"):
        profile()
    monkeypatch.delenv("ALEXNET_PROFILE")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert profile() == "full"
    monkeypatch.setenv("CI", "true")
    assert is_quick()
    # The notebooks' profile lives in book.py alone; the library's runtime only picks the device.
    assert not hasattr(runtime, "profile") and not hasattr(runtime, "is_quick")


def test_show_table_displays_markdown(capsys, monkeypatch):
    shown = []
    monkeypatch.setattr("alexnet_lib.book.display", lambda value, raw: shown.append(value))
    show_table(["name", "value"], [["C1", 96], ["C2", 256]], "lr")
    assert shown[0]["text/markdown"].splitlines() == ["| name | value |", "|:--|--:|", "| C1 | 96 |", "| C2 | 256 |"]
    assert shown[0]["text/plain"] == shown[0]["text/markdown"]


def test_show_table_shows_commands_as_code(monkeypatch):
    # As prose, Sphinx's smart quotes would print "--epochs" with a dash, and the copied command would fail.
    shown = []
    monkeypatch.setattr("alexnet_lib.book.display", lambda value, raw: shown.append(value))
    show_table(["setup"], [["Ten epochs. On a GPU: python -m alexnet_lib train --epochs 90 --workers 4."]], "l")
    assert shown[0]["text/markdown"].splitlines()[2] == (
        "| Ten epochs. On a GPU: `python -m alexnet_lib train --epochs 90 --workers 4`. |")


def test_code_spans_finds_where_a_command_ends():
    assert code_spans("run python -m alexnet_lib experiment lrn; then") == (
        "run `python -m alexnet_lib experiment lrn`; then")
    assert code_spans("(python -m alexnet_lib data --data-root x)") == "(`python -m alexnet_lib data --data-root x`)"
    assert code_spans("python -m alexnet_lib experiment x --output results/x-90.json.") == (
        "`python -m alexnet_lib experiment x --output results/x-90.json`.")
    assert code_spans("torchrun --nproc-per-node=8 -m alexnet_lib train. Next.") == (
        "`torchrun --nproc-per-node=8 -m alexnet_lib train`. Next.")
    assert code_spans("no command, lr 0.5.") == "no command, lr 0.5."
    assert code_spans("already `python -m alexnet_lib data`") == "already `python -m alexnet_lib data`"


def test_show_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="columns"):
        show_table(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="columns"):
        show_table(["a", "b"], [[1, 2]], "l")


def test_execution_seconds_adds_up_the_cells(tmp_path):
    def cell(start, end):
        return {"cell_type": "code", "metadata": {"execution": {
            "iopub.execute_input": f"2026-11-29T09:{start}Z", "shell.execute_reply": f"2026-11-29T09:{end}Z"}}}

    notebook = tmp_path / "nb.ipynb"
    cells = [cell("24:16.000000", "24:22.500000"), {"cell_type": "markdown", "metadata": {}},
             cell("25:00.000000", "26:30.000000"), {"cell_type": "code", "metadata": {}}]
    notebook.write_text(json.dumps({"cells": cells}))
    assert execution_seconds(notebook) == 6.5 + 90
    notebook.write_text(json.dumps({"cells": cells[1:2]}))
    assert execution_seconds(notebook) is None


def test_run_time_text_reads_like_a_header():
    assert run_time_text(3.2) == "about 10 seconds"
    assert run_time_text(44) == "about 40 seconds"
    assert run_time_text(89) == "about 90 seconds"
    assert run_time_text(90) == "about 2 minutes"
    assert run_time_text(368.6) == "about 6 minutes"


def test_glue_chapter_times_glues_each_stored_chapter(tmp_path, monkeypatch):
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display: glued.update({name: value}))
    cell = {"cell_type": "code", "metadata": {"execution": {
        "iopub.execute_input": "2026-11-29T09:24:00.000000Z", "shell.execute_reply": "2026-11-29T09:27:10.000000Z"}}}
    (tmp_path / "07_model.ipynb").write_text(json.dumps({"cells": [cell]}))
    (tmp_path / "08_never_run.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}}]}))
    (tmp_path / "notes.ipynb").write_text(json.dumps({"cells": [cell]}))  # not a chapter
    assert glue_chapter_times(tmp_path) == {"07": 190.0}
    assert glued == {"run_time_07": "about 3 minutes"}


def test_load_results_finds_the_checkout_folder(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "lrn.json").write_text(json.dumps({"name": "lrn"}))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    assert results_dir(notebooks) == tmp_path / "results"
    assert load_results("lrn", notebooks) == {"name": "lrn"}
    assert load_results("pooling", notebooks) is None


def test_load_results_outside_a_checkout(tmp_path):
    assert results_dir(tmp_path) is None and load_results("lrn", tmp_path) is None


def test_check_close_names_every_number_out_of_tolerance():
    check_close({"loss": (2.1724, 2.1729), "error": (0.50, 0.52)}, abs_tol=0.03)
    check_close({"gradient norm": (1022.1, 1024.8)}, rel_tol=0.01)
    with pytest.raises(AssertionError, match=r"^not within abs_tol=0.01.*error = 0.5, stored 0.52$"):
        check_close({"loss": (2.1724, 2.1729), "error": (0.50, 0.52)}, abs_tol=0.01)
    with pytest.raises(AssertionError, match="loss = nan"):
        check_close({"loss": (float("nan"), 2.3)}, abs_tol=1.0)


def test_glue_comparison_glues_the_difference_of_the_second_arm_from_the_paper_arm(monkeypatch):
    from alexnet_lib import stats

    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display: glued.update({name: value}))
    paper, other = [0.20, 0.21, 0.22], [0.25, 0.26, 0.24]
    summary = {"epochs": 6, "seeds": [0, 1, 2], "arms": ["with LRN", "without LRN"],
               "test_error": {"with LRN": {"ten_patch_top1": stats.describe(paper)},
                              "without LRN": {"ten_patch_top1": stats.describe(other)}},
               "ten_patch_top1_difference": stats.compare(other, paper)}
    glue_comparison("lrn", summary, paper_gap=0.01)
    d = stats.difference(other, paper)
    assert glued["lrn_seeds"] == 3 and glued["lrn_epochs"] == 6
    assert glued["lrn_paper_mean"] == pytest.approx(21.0) and glued["lrn_other_std"] == pytest.approx(1.0)
    assert glued["lrn_difference"] == pytest.approx(4.0)
    # Three significant digits, as the text shows them.
    assert glued["lrn_low"] == pytest.approx(100 * d["ci95"][0], abs=0.005) and glued["lrn_verdict"] == "significant"
    # +4 points, the paper's way; the interval (about 1.7 to 6.3 points) leaves out a 1-point gap, holds a 5-point one.
    assert glued["lrn_direction"] == "the paper's direction" and glued["lrn_covers_paper"] == "excludes"
    glue_comparison("lrn", summary, paper_gap=0.05)
    assert glued["lrn_covers_paper"] == "includes"
    summary["ten_patch_top1_difference"] = stats.compare(other[:1], paper[:1])
    with pytest.raises(ValueError, match="no interval"):
        glue_comparison("lrn", summary, paper_gap=0.02)


def _dropout_results(final_errors: dict[str, list[float]], complete: bool) -> dict:
    """A dropout_same_lr results file: per arm, one finished run per final test error (two epochs each)."""
    runs = {}
    for arm, errors in final_errors.items():
        for seed, error in enumerate(errors):
            history = [{"epoch": 1, "test_top1_error": error + 0.05, "val_top1_error": 0.5, "clean_train_error": 0.4},
                       {"epoch": 2, "test_top1_error": error, "val_top1_error": 0.45,
                        "clean_train_error": 0.1 if arm == "no dropout" else 0.3}]
            runs[f"{arm} seed={seed}"] = {"history": history, "diverged": None, "complete": True}
    return {"runs": runs, "complete": complete, "provenance": {"seeds": [0, 1, 2]}}


def test_glue_dropout_same_lr_says_how_far_the_experiment_is_and_what_it_shows(monkeypatch):
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.__setitem__(name, value))
    results = _dropout_results({"dropout 0.5": [0.40, 0.42], "no dropout": [0.44, 0.46]}, complete=False)
    described = glue_dropout_same_lr(results)
    assert described["no dropout"]["final_test_error"]["values"] == [0.44, 0.46]
    assert glued["same_lr_status"].startswith("2 of the 3 seeds of each arm have finished so far")
    assert (glued["same_lr_final_0"], glued["same_lr_final_5"], glued["same_lr_train_0"]) == (45.0, 41.0, 10.0)
    # Both arms' lowest test error is their last epoch's here: lower with dropout.
    assert "lower with dropout: 45.0% without dropout and 41.0% with it" in glued["same_lr_best"]
    assert glued["same_lr_difference"].startswith("Without dropout minus with, the final test errors differ by +4.0 points")
    results = _dropout_results({"dropout 0.5": [0.40], "no dropout": [0.38]}, complete=False)
    glue_dropout_same_lr(results)
    assert "lower without dropout" in glued["same_lr_best"]
    assert glued["same_lr_difference"].startswith("With one finished seed per arm")


def test_percent_text_reads_mean_spread_and_count():
    assert percent_text({"n": 3, "mean": 0.319, "std": 0.007}) == "31.9 ± 0.7 (n=3)"
    assert percent_text({"n": 1, "mean": 0.3, "std": None}) == "30.0 (n=1)"
    assert percent_text({"n": 0, "mean": None, "std": None}) == "–"


def test_sizes_follow_the_profile_and_tests_tiny_override(monkeypatch):
    monkeypatch.delenv("ALEXNET_TINY", raising=False)
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    assert sizes(quick=(10, 2), full=(100, 30), tiny=(1, 1)) == (10, 2)
    monkeypatch.setenv("ALEXNET_PROFILE", "full")
    assert sizes(quick=(10, 2), full=(100, 30), tiny=(1, 1)) == (100, 30)
    monkeypatch.setenv("ALEXNET_TINY", "1")
    assert sizes(quick=(10, 2), full=(100, 30), tiny=(1, 1)) == (1, 1)
    assert sizes(quick=(10, 2), full=(100, 30)) == (10, 2)  # tiny defaults to the quick sizes
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    assert sizes(quick=(10, 2), full=(100, 30), tiny=(1, 1)) == (10, 2)  # the quick profile ignores it


def _figure1_run(errors, complete=True, epochs=80, lr=0.001, seed=0, threads=1):
    return {"history": [{"epoch": i + 1, "clean_train_error": e} for i, e in enumerate(errors)], "diverged": None,
            "complete": complete, "config": {"epochs": epochs, "lr": lr, "seed": seed},
            "provenance": {"hardware": {"torch_threads": threads}}}


def test_glue_relu_tanh_paper_reports_the_sweep_and_the_runs_so_far(monkeypatch):
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.__setitem__(name, value))
    runs = {"sweep relu lr=0.001": _figure1_run([0.4, 0.24]), "sweep relu lr=0.003": _figure1_run([0.5, 0.3], False),
            "sweep tanh lr=0.01": _figure1_run([0.6, 0.5], epochs=2)}
    results = {"runs": runs, "complete": False, "provenance": {"seeds": [0, 1, 2]}}
    rows = glue_relu_tanh_paper(results)
    assert rows == [["ReLU", "0.001", "2", "24.0"], ["ReLU", "0.003", "running (2 epochs so far)", "30.0"],
                    ["tanh", "0.01", "not within 2", "50.0"]]
    assert glued["fig1_status"].startswith("So far ReLU's sweep has tried 2 rates, tanh's sweep has tried 1 rate.")
    assert glued["fig1_result"] == "No run at a chosen rate has finished yet."

    def reaching(epoch):  # a run at the target after ``epoch`` epochs
        return _figure1_run([0.3] * (epoch - 1) + [0.2])

    runs.update({"relu seed=0": reaching(10), "relu seed=1": reaching(11), "tanh seed=0": reaching(30),
                 "tanh seed=1": reaching(34), "tanh seed=2": _figure1_run([0.3], complete=False)})
    glue_relu_tanh_paper(results)
    assert "2 of 3 ReLU runs at its chosen rate have finished, 2 of 3 tanh runs" in glued["fig1_status"]
    assert glued["fig1_result"].startswith("The ReLU runs reached 25% training error after 10 and 11 epochs")
    assert glued["fig1_result"].endswith("On average tanh needed 3.0 times as many epochs as ReLU (95% interval 1.4 to 4.2).")
    results["complete"] = True
    glue_relu_tanh_paper(results)
    assert glued["fig1_status"].startswith("In all, ReLU's sweep has tried 2 rates")
    assert "still running" not in glued["fig1_status"]
    results["paper"] = {"speedup": 6}
    glue_relu_tanh_paper(results)
    assert glued["fig1_result"].endswith("(95% interval 1.4 to 4.2). The paper's 6 lies above that interval.")
    results["paper"] = {"speedup": 3}
    glue_relu_tanh_paper(results)
    assert glued["fig1_result"].endswith("The paper's 3 lies inside that interval.")
    # The sweep's ReLU run at lr 0.001 stopped after 2 epochs, so the seed-0 run is compared with it there; no tanh
    # sweep run is at the tanh runs' rate (0.001 in these records).
    assert glued["fig1_repeat"] == (
        "Each sweep's run at the chosen rate and the seed-0 run at that rate share every setting, the seed included; "
        "only the number of threads may differ, and with it the order in which the numbers are added. Their "
        "training errors: 24.0% against 30.0% after 2 epochs for ReLU (1 and 1 threads).")
    runs["relu seed=0"]["provenance"]["hardware"]["torch_threads"] = 2
    glue_relu_tanh_paper(results)
    assert glued["fig1_repeat"].endswith("after 2 epochs for ReLU (1 and 2 threads).")
    del runs["sweep relu lr=0.001"]
    glue_relu_tanh_paper(results)
    assert glued["fig1_repeat"] == ""

    # A tanh run that missed the target at its cap: the ratio is a lower bound.
    runs.update({"tanh seed=1": _figure1_run([0.3] * 80), "relu seed=2": reaching(12), "tanh seed=2": reaching(40)})
    glue_relu_tanh_paper(results)
    assert "tanh runs reached 25% training error after 30 and 40 epochs (the other 1 not within 80)" in glued["fig1_result"]
    assert glued["fig1_result"].endswith("Counting the tanh runs that missed it as 80 epochs, tanh needed at least "
                                         "4.5 times as many epochs as ReLU.")
