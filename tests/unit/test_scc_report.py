"""SCC sweep report, comparison and parameters on hand-built task rows (no cluster)."""
from __future__ import annotations

import pytest

from analytics_jobs.scc.report import STAGES, build_report, compare, markdown, summarise
from analytics_jobs.scc.spark_sweep import Params, combinations, distinct_hosts, tasks_for


def row(b_in: int, b_out: int, pair: int, ratio: float, scale: float = 1.0) -> dict:
    """A flat task row as spark_sweep writes it; stage i takes (i + 1) * scale seconds."""
    out = {"pair": pair, "b_in": b_in, "b_out": b_out, "grid_poses": (2 * b_out) ** 3,
           "false_candidate_ratio": ratio, "best_error_deg": 2.0 * pair,
           "host_cpu_model": "Test CPU", "host_cpu_cores": 2, "host_load1": 0.5 + pair,
           "spark_master": "spark://x:7077", "spark_executor_memory": "1g"}
    for i, stage in enumerate(STAGES):
        out[f"{stage}_seconds"] = (i + 1) * scale * b_out / 64
        out[f"{stage}_cpu_seconds"] = (i + 1) * scale * b_out / 128
        out[f"{stage}_peak_rss_mib"] = 200.0 + 10 * i * scale + pair
        out[f"{stage}_peak_delta_mib"] = 10.0 * i * scale + pair
    out["total_seconds"] = sum(out[f"{s}_seconds"] for s in STAGES)
    return out


ROWS = [row(64, 64, p, r) for p, r in enumerate([0.0, 0.01, 0.02, 0.03, 0.04])] + [
    row(128, 64, 0, 0.5), row(128, 64, 1, 0.7)]


def test_summary_quantiles_and_stage_medians():
    summary = summarise(ROWS)
    assert [(e["b_in"], e["b_out"], e["tasks"]) for e in summary] == [(64, 64, 5), (128, 64, 2)]
    q = summary[0]["false_candidate_ratio"]
    assert q["min"] == 0.0 and q["max"] == 0.04
    assert q["median"] == pytest.approx(0.02) and q["q25"] == pytest.approx(0.01)
    assert summary[1]["false_candidate_ratio"]["median"] == pytest.approx(0.6)
    corr = summary[0]["stages"]["correlation"]
    assert corr["seconds"]["median"] == pytest.approx(5.0)
    assert corr["peak_delta_mib"]["median"] == pytest.approx(42.0)    # 40 + pair, median pair 2
    assert corr["peak_delta_mib"]["max"] == pytest.approx(44.0)
    assert summary[0]["peak_rss_mib"] == pytest.approx(254.0)          # finalisation, pair 4
    assert summary[0]["total_seconds"]["median"] == pytest.approx(21.0)


def test_report_has_study_tables_and_pngs():
    summary = summarise(ROWS)
    hosts = distinct_hosts(ROWS)
    assert len(hosts) == 1 and hosts[0]["cpu_model"] == "Test CPU"   # load is not a host fact
    text = markdown(summary, hosts, [{"b_in": 64, "b_out": 128, "reason": "x"}])
    for heading in ("Wall time per stage", "Peak memory per stage", "False-candidate ratio", "Hosts"):
        assert heading in text
    assert "| 128:64 | 2 | 2097152 | 5.00e-01 | 5.50e-01 | 6.00e-01 |" in text
    assert "| 64:64 | 5 | 4.0 | 14.0 | 24.0 | 34.0 | 44.0 | 54.0 |" in text   # memory: max over pairs
    assert "Skipped (output > input): 64:128." in text
    assert "Test CPU" in text and "spark.executor.memory=1g" in text
    artifacts = build_report(summary, hosts)
    assert set(artifacts) == {"report.md", "time.png", "memory.png", "quality.png"}
    for name in ("time.png", "memory.png", "quality.png"):
        assert artifacts[name].startswith(b"\x89PNG") and len(artifacts[name]) > 5000


def test_false_peaks_and_the_study_tables_10_11():
    rows = [{**row(64, 64, p, r), "false_peaks": peaks} for p, (r, peaks) in enumerate([(0.0, 0), (0.001, 3), (0.002, 5)])]
    rows += [{**row(512, 512, 0, 0.0), "false_peaks": 0}]
    summary = summarise(rows)
    assert summary[0]["false_peaks"]["median"] == 3 and summary[0]["false_peaks"]["max"] == 5
    text = markdown(summary, distinct_hosts(rows))
    assert "| 64:64 | 3 | 2097152 | 0.00e+00 | 5.00e-04 | 1.00e-03 | 1.50e-03 | 2.00e-03 | 3 | 5 |" in text
    table = text[text.index("## Study Tables 10–11"):]
    assert "data differ from the study's" in table and "synthetic" in table
    lines = table.splitlines()
    header = next(ln for ln in lines if ln.startswith("| | "))
    cols = [c.strip() for c in header.strip("|").split("|")][1:]
    assert len(cols) == 14 and cols[:5] == ["64:64", "128:64", "256:64", "512:64", "1024:64"]
    assert cols[-2:] == ["512:512", "1024:512"]                      # the study's column order
    study, ours, peaks, pairs = (next(ln for ln in lines if ln.startswith(p)) for p in (
        "| study", "| here: median ratio", "| here: median false peaks", "| here: pairs"))
    assert study.split("|")[2].strip() == "0.00944" and study.split("|")[-2].strip() == "1.18e-05"
    assert ours.split("|")[2].strip() == "0.001" and ours.split("|")[3].strip() == "–"
    mean = next(ln for ln in lines if ln.startswith("| here: mean ratio"))
    assert mean.split("|")[2].strip() == "0.001" and mean.split("|")[-3].strip() == "0"
    assert peaks.split("|")[2].strip() == "3" and pairs.split("|")[2].strip() == "3"
    assert pairs.split("|")[-3].strip() == "1"                          # 512:512, one pair


def test_compare_gives_ratios_per_common_combination():
    a = {"job_id": "A", "summary": summarise(ROWS), "hosts": distinct_hosts(ROWS)}
    slow = [row(64, 64, p, 0.1, scale=2.0) for p in range(3)] + [row(256, 64, 0, 0.2)]
    b = {"job_id": "B", "summary": summarise(slow), "hosts": distinct_hosts(slow)}
    out = compare(a, b)
    assert out["jobs"] == ["A", "B"]
    assert [r["combination"] for r in out["combinations"]] == ["64:64"]
    r = out["combinations"][0]
    assert r["total_seconds_ratio"] == pytest.approx(2.0)
    assert r["correlation_seconds_ratio"] == pytest.approx(2.0)
    assert r["correlation_mib"] == [pytest.approx(44.0), pytest.approx(82.0)]
    assert r["false_candidate_median"] == [pytest.approx(0.02), pytest.approx(0.1)]
    assert out["only_in_a"] == ["128:64"] and out["only_in_b"] == ["256:64"]
    assert out["hosts"][0][0]["cpu_model"] == "Test CPU"


def test_params_split_comma_lists_and_skip_invalid_combinations():
    p = Params.model_validate({"inputs": "64,128,256", "outputs": "128,64", "pairs": "2"})
    assert p.inputs == [64, 128, 256] and p.outputs == [64, 128]
    valid, skipped = combinations(p.inputs, p.outputs)
    assert valid == [(64, 64), (128, 64), (128, 128), (256, 64), (256, 128)]
    assert skipped == [{"b_in": 64, "b_out": 128, "reason": "output resolution exceeds input resolution"}]
    tasks = tasks_for(p)
    assert len(tasks) == 10 and tasks[0]["b_out"] == 128          # expensive first
    with pytest.raises(ValueError):
        Params.model_validate({"inputs": "16", "outputs": "32"})  # nothing valid
    with pytest.raises(ValueError):
        Params.model_validate({"inputs": "16,4096", "outputs": "16"})
