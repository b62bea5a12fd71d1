"""The benchmark harness runs at a tiny size, so it cannot rot (no speed is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import SECTIONS, main
from benchmarks.figures import Figure, percentile
from benchmarks.workload import memory, run_scenario


def test_benchmark_harness_runs_and_counts_writes() -> None:
    result = run_scenario("smoke", memory, runs=3, in_flight=2, reps=1)
    assert result.steps_per_s > 0
    assert result.writes_per_step == 1.1  # create + one transition per step, 10 steps


def test_every_section_runs_at_tiny_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    results = main(["--quick", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "### Throughput" in printed and "### Targets" in printed
    for section in SECTIONS:
        assert section in results
    saved = json.loads(out.read_text())
    assert saved["writes"]["sqlite"]["writes_per_step"] == pytest.approx(1.1)
    assert saved["writes"]["mongo"]["writes_per_step"] == pytest.approx(1.1)
    assert saved["throughput"][0]["ours"]["steps_per_s"]["median"] > 0
    assert saved["memory"]["full"]["waiting_runs"] > 0
    assert "dbos" not in saved["throughput"][2]  # --quick never installs or runs DBOS


def test_only_picks_sections_and_refuses_unknown_names(tmp_path: Path) -> None:
    results = main(["--quick", "--only", "disk,writes", "--json", str(tmp_path / "r.json")])
    assert {"disk", "writes", "wal"} <= results.keys()
    assert "throughput" not in results
    with pytest.raises(SystemExit):
        main(["--only", "nonsense"])


def test_figures_summarise_repetitions() -> None:
    fig = Figure.of([3.0, 1.0, 2.0])
    assert (fig.median, fig.lo, fig.hi) == (2.0, 1.0, 3.0)
    assert fig.text(".0f") == "2 (1 – 3)"
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)
