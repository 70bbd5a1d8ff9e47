"""``bench/throughput.py`` runs end to end (tiny model, a few pairs) and reports parity.

Speed is not asserted here (it is measured by the script itself); this keeps the script that
a short GPU session depends on from breaking unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.bench import load_bench


def test_throughput_script_reports_every_method_with_parity(tmp_path: Path) -> None:
    bench = load_bench()
    out = tmp_path / "result.json"
    bench.main(["--device", "cpu", "--size", "tiny", "--workload", "all", "--pairs", "3",
                "--image-pairs", "2", "--latency-repeats", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert set(report["workloads"]) == {"text", "image", "mixed"}
    image = report["workloads"]["image"]
    assert set(image["methods"]) == {"reference", "engine_padded", "engine", "engine_warm"}
    assert image["methods"]["engine_warm"]["cache"]["vision"]["hits"] >= 2
    for workload in report["workloads"].values():
        assert workload["methods"]["engine"]["pad_fraction"] == 0.0
        for parity in workload["parity"].values():
            assert parity["max_abs_score_diff"] < 1e-5
            assert parity["ranking_identical"]
    assert report["latency_1x32"]["p50_ms"] > 0
