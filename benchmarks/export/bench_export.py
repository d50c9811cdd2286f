"""Cohort export throughput (issue 18 item 1): MB/s of the `export` job on the cluster.

Stores synthetic CT studies (512^2, 16-bit; pseudonymous patients, so no de-identification is
needed) through the real commit path (`received.prepare` + `Committer`) and their visits through
the gateway's `VisitStore`, into a scratch namespace, then runs the `export` job in this process
(the real `Runner.run_one` on a SparkSession; the shared job runner never sees the namespace).
Three shapes (`--shapes`), side by side in one run, exported in this order:

- `cohort`: `--cases` cases with one study of `--images` images each (a small teaching cohort;
  first, so its staging includes the SparkSession start, as in earlier rows);
- `demo`: the demo's data as `make demo` makes it (tests/demo_support.py: the demo's HIS export,
  `pacs has sync` to a real gateway, the small synthetic series of every imaging exam
  (deploy/demo_images.py) by C-STORE through a real `pacs edge`), exported whole: every case
  with images;
- `big`: one case with one study of `--big-images` images (issue 18 asks for 2,000).

Records per shape: cases, studies, images, zip MB, job seconds (staging on Spark, zipping on
the driver), MB/s, NIfTI volumes, the driver process's peak RSS above its level at submit
(sampled every 0.2 s; bounded memory: it must not grow with the zip; the Spark JVM is a
separate process, not counted), the 1-minute load average before and after, and the
1/5/15-minute ones (`uptime`) before. Writes results.json (`stored_mb`: the synthetic shapes'
bytes; `demo`: what the demo load sent) and a RESULTS.md row per shape; the scratch namespace
is deleted at the end.

    PACS_HOME=.pacs-test .venv/bin/python benchmarks/export/bench_export.py \
        [--shapes cohort,demo,big --cases 10 --images 40 --big-images 2000]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import drop_scratch, record, scratch_settings  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
COLUMNS = ["shape", "cases", "studies", "images", "zip_mb", "job_s", "stage_s", "zip_s",
           "mb_per_s", "nifti_volumes", "driver_rss_growth_mb", "load_before", "load_after",
           "uptime_load_before"]


def _pseudonym() -> str:
    return "RSB" + uuid.uuid4().hex[:15].upper()


def store_study(settings, committer, patient: str, images: int, size: int = 512) -> int:
    """One CT study of `images` slices for `patient`, committed in batches; bytes stored."""
    from pacs_hdfs.dicom.received import prepare
    from pacs_hdfs.dicom.synthetic import ct_series
    study = f"2.25.{uuid.uuid4().int}"
    total, batch = 0, []
    for ds in ct_series(images, patient_id=patient, patient_name="Bench^Case", study_uid=study,
                        size=size, accession=patient[-8:]):
        ds.PatientName, ds.InstitutionName, ds.ReferringPhysicianName = "", "", ""
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        batch.append(prepare(buf.getvalue(), ds, "bench"))
        total += len(batch[-1].data)
        if len(batch) >= 200:
            _commit(committer, batch)
            batch = []
    _commit(committer, batch)
    return total


def _commit(committer, batch) -> None:
    if batch:
        bad = [o for o in committer.store_many(batch) if not o.acknowledged]
        if bad:
            raise SystemExit(f"{len(bad)} object(s) not stored: {bad[0]}")


def store_visits(settings, patients: list[str]) -> None:
    from hl7_gateway.models import Diagnosis, Visit
    from hl7_gateway.store import VisitStore
    VisitStore(settings).store([
        Visit(visit_id=f"BV{uuid.uuid4().hex[:16]}", patient_id=p, sex="F", age=50,
              admission=datetime(2022, 5, 1 + i % 27, 8), discharge=datetime(2022, 5, 2 + i % 27),
              diagnoses=[Diagnosis(system="ICD10", code="C50.9", primary=True)])
        for i, p in enumerate(patients) for _ in range(2)])


def run_export(service, runner, patients: list[str]) -> dict:
    """Run one export in this process; the driver's RSS is sampled every 0.2 s meanwhile."""
    import threading

    import psutil
    rec = service.submit("export", {"pseudonyms": patients}, start_runner=False)
    me = psutil.Process()
    rss0, peak, stop = me.memory_info().rss, [0], threading.Event()

    def sample():
        while not stop.wait(0.2):
            peak[0] = max(peak[0], me.memory_info().rss)
    threading.Thread(target=sample, daemon=True).start()
    uptime_load = os.getloadavg()
    try:
        runner.run_one(rec.id)
    finally:
        stop.set()
    rec = service.status(rec.id)
    if rec.state != "succeeded":
        raise SystemExit(f"export job {rec.id} {rec.state}: {rec.error}")
    n = json.loads(service.artifact(rec.id))["numbers"]
    return {"cases": n["cases"], "studies": n["studies"], "images": n["instances"],
            "zip_mb": round(n["zip_bytes"] / 1e6, 1),
            "job_s": n["seconds"], "stage_s": n["stage_seconds"], "zip_s": n["zip_seconds"],
            "mb_per_s": n["mb_per_s"], "nifti_volumes": n["nifti_volumes"],
            "driver_rss_growth_mb": round(max(0, peak[0] - rss0) / 2**20, 1),
            "load_before": round(uptime_load[0], 1), "load_after": round(os.getloadavg()[0], 1),
            "uptime_load_before": " / ".join(f"{x:.2f}" for x in uptime_load), "job_id": rec.id}


def load_demo_cases(settings) -> tuple[list[str], dict]:
    """The demo's data into the scratch namespace (a scratch $PACS_HOME for its services);
    the pseudonyms of every case with images, and what was sent."""
    from benchmarks.common import scratch_env
    from tests.demo_support import cases_with_images, load_demo
    from tests.namespace_support import namespace_environ
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-export-demo-") as work:
        home = Path(work, "mdc-home")
        for d in ("run", "logs"):
            (home / d).mkdir(parents=True)
        env = {**scratch_env(settings), "PACS_HOME": str(home)}
        with namespace_environ(env):
            studies, images = load_demo(Path(work), settings)
    cases = cases_with_images(settings)
    sent = {"studies_sent": studies, "images_sent": images, "cases_with_images": len(cases),
            "load_s": round(time.monotonic() - t0, 1)}
    print(f"demo data: {json.dumps(sent)}", flush=True)
    return cases, sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="cohort,demo,big", help="comma list (see above)")
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--big-images", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="leave the scratch namespace")
    ap.add_argument("--no-record", action="store_true", help="a trial run: print only")
    args = ap.parse_args()

    from analytics_jobs.runner import Runner
    from analytics_jobs.service import JobService
    from pacs_hdfs import clients
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import Committer
    from pacs_hdfs.storage import init_storage
    settings = scratch_settings("export")
    init_storage(settings)
    try:
        committer = Committer(clients.hbase(settings),
                              ContainerWriter(clients.hdfs(settings), writer="bench"))
        wanted = args.shapes.split(",")
        if set(wanted) - {"cohort", "demo", "big"}:
            raise SystemExit(f"unknown shape(s) in --shapes {args.shapes}")
        if not args.big_images and "big" in wanted:
            wanted.remove("big")
        shapes = {s: [] for s in ("cohort", "demo", "big") if s in wanted}
        demo = {}
        if "demo" in shapes:
            shapes["demo"], demo = load_demo_cases(settings)
        t0, stored = time.monotonic(), 0
        if "cohort" in shapes:
            shapes["cohort"] = [_pseudonym() for _ in range(args.cases)]
            stored += sum(store_study(settings, committer, p, args.images)
                          for p in shapes["cohort"])
        if "big" in shapes:
            shapes["big"] = [_pseudonym()]
            stored += store_study(settings, committer, shapes["big"][0], args.big_images)
        synthetic = shapes.get("cohort", []) + shapes.get("big", [])
        if synthetic:
            store_visits(settings, synthetic)
            print(f"stored {stored / 1e6:.0f} MB in {time.monotonic() - t0:.0f} s", flush=True)
        service, runner = JobService(settings), Runner(settings)
        rows = []
        for shape, patients in shapes.items():
            rows.append({"shape": shape, **run_export(service, runner, patients)})
            print(json.dumps(rows[-1]), flush=True)
            if not args.no_record:
                record(BENCH_DIR, {**rows[-1], "stored_mb": round(stored / 1e6, 1)}, COLUMNS)
        runner.stop_spark()
        if not args.no_record:   # results.json: every shape of this run, not only the last
            last = json.loads((BENCH_DIR / "results.json").read_text())
            (BENCH_DIR / "results.json").write_text(json.dumps(
                {"date": last["date"], "host": last["host"], "stored_mb": round(stored / 1e6, 1),
                 "demo": demo, "rows": rows}, indent=2) + "\n")
    finally:
        if not args.keep:
            drop_scratch(settings)


if __name__ == "__main__":
    main()
