"""`bench generate --workers`: one process against W, alternated, as one JSON line."""

from __future__ import annotations

import json


def test_bench_generate_workers_times_both_and_reports_the_ratio(capsys) -> None:
    from synface.cli.main import main

    assert main(["bench", "generate", "--images", "40", "--samples", "10", "--workers", "2", "--repeats", "1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["bench"] == "generate-workers" and result["images"] == 40 and result["workers"] == 2
    assert len(result["seconds"]["1"]) == len(result["seconds"]["2"]) == 1
    ratio = result["median_s"]["1"] / result["median_s"]["2"]
    assert abs(result["speedup"] - ratio) < 1e-3 and result["speedup"] > 0
