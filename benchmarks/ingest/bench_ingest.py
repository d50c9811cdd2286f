"""C-STORE ingest through the hospital edge, side by side with Orthanc and a discarding SCP.

Receivers, each sent the same kind of study (generated 512x512 16-bit CT, ~0.5 MB per image,
fresh UIDs per set) by dcmtk `storescu` over 1 and N parallel associations:
- `edge`: `pacs edge` (parse, validate, de-identify, encode, fsync to its spool, then answer)
  forwarding over STOW-RS (mTLS) to `pacs gateway`, which commits to HDFS + HBase in a scratch
  namespace (own HDFS root and HBase table prefix, deleted at the end);
- `orthanc`: Orthanc from Debian (SQLite index + file storage);
- `discard`: a pynetdicom SCP that answers success and keeps nothing (the loopback ceiling).

Reported (issue 13):
- (a) modality -> receiver acknowledged rate (images/s), per receiver and association count;
- (b) for the edge: seconds from the first image sent until the whole study is durable in the
  data center and answers a STUDY-level query with all its instances, as a ratio to (a)'s time;
- (c) HDFS bytes per stored byte after the drain: growth of the whole namespace (all replicas:
  batch files, HBase WALs and store files) over the bytes of the objects stored;
- (d) with `--outage`: the gateway (the data center's ingest) is stopped for `--outage` seconds in
  the middle of a 4-association send; the edge keeps acknowledging; afterwards every image
  must be in the data center exactly once (rows counted, sha256 of each checked) and nothing
  left in the edge's spool or rejected/;
- the edge's per-object CPU ms per stage (parse, validate, deidentify, encode, vault, fsync),
  from `pacs edge status --json`.

    .venv/bin/python benchmarks/ingest/bench_ingest.py [--images 2000] [--parallel 4]
        [--receivers discard,orthanc,edge] [--outage 60] [--no-record]

Needs the running cluster (PACS_HOME), dcmtk and Orthanc (`apt-get install orthanc`). Check
`uptime` first: numbers are only comparable on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import drop_scratch, record, scratch_settings  # noqa: E402
from pacs_hdfs.dicom.synthetic import ct_series, write_files  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
DISCARD_PORT, ORTHANC_PORT = 11124, 4242


def make_sets(root: Path, n: int, parts: int) -> tuple[list[list[Path]], list]:
    """One study of `n` new images (fresh UIDs) split into `parts` directories."""
    series = ct_series(n, patient_id=f"BENCH-{root.name}", patient_name="Bench^Patient")
    per = -(-n // parts)
    return ([write_files(series[i * per:(i + 1) * per], root / f"part{i}") for i in range(parts)],
            series)


def send(ae: str, port: int, parts: list[list[Path]]) -> float:
    """Wall seconds for storescu to send every part, one association per part, in parallel."""
    def one(files: list[Path]) -> subprocess.CompletedProcess:
        return subprocess.run(["storescu", "-aec", ae, HOST, str(port), "+sd",
                               str(files[0].parent)], capture_output=True, text=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(parts)) as pool:
        results = list(pool.map(one, parts))
    wall = time.perf_counter() - t0
    for r in results:
        if r.returncode != 0 or "Store Failed" in r.stderr:
            raise RuntimeError(f"storescu to {ae} failed: {r.stderr[-500:]}")
    return wall


def wait_echo(ae: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["echoscu", "-aec", ae, HOST, str(port)],
                         capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{ae} on {port} did not answer C-ECHO")
        time.sleep(0.5)


def start_discard() -> subprocess.Popen:
    code = ("from pynetdicom import AE, AllStoragePresentationContexts, evt\n"
            "from pynetdicom.sop_class import Verification\n"
            "ae = AE('DISCARD'); ae.maximum_pdu_size = 0\n"
            "ae.supported_contexts = AllStoragePresentationContexts\n"
            "ae.add_supported_context(Verification)\n"
            f"ae.start_server(('127.0.0.1', {DISCARD_PORT}), block=True,"
            " evt_handlers=[(evt.EVT_C_STORE, lambda e: 0)])\n")
    return subprocess.Popen([sys.executable, "-c", code])


def start_orthanc(tmp: Path) -> subprocess.Popen:
    cfg = {"Name": "bench", "StorageDirectory": str(tmp / "storage"),
           "IndexDirectory": str(tmp / "index"), "DicomAet": "ORTHANC",
           "DicomPort": ORTHANC_PORT, "HttpPort": 8042, "RemoteAccessAllowed": False,
           "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "Plugins": []}
    (tmp / "orthanc.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen(["Orthanc", str(tmp / "orthanc.json")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:8042/system", timeout=2).read()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("Orthanc did not start")
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- the edge path ---------------------------------------------------------------------------

def space_consumed(hdfs, path: str = "/") -> int:
    """Bytes of DFS space under `path`, all replicas (WebHDFS GETCONTENTSUMMARY)."""
    return int(hdfs.client.content(path)["spaceConsumed"])


def study_count(hbase, study_uid: str) -> int:
    """NumberOfStudyRelatedInstances of a study, as a STUDY-level query answers it."""
    from pydicom import Dataset

    from pacs_hdfs.dicom import query
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study_uid
    ident.NumberOfStudyRelatedInstances = ""
    found = list(query.find(hbase, ident))
    return int(found[0].NumberOfStudyRelatedInstances) if found else 0


def wait_arrived(path, hbase, study_uid: str, n: int, t0: float, timeout: float = 1800) -> float:
    """Seconds from t0 until the edge's spool is empty and the study answers with n images."""
    deadline = time.monotonic() + timeout
    while any(path.spool.glob("*.dcm")) or study_count(hbase, study_uid) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"study {study_uid} incomplete after {timeout} s")
        time.sleep(0.25)
    return time.perf_counter() - t0


def check_exactly_once(path, scratch, series, keys) -> dict:
    """Every image in the data center once, bytes verified; nothing left at the edge."""
    from deid import remap_uid
    from pacs_hdfs import clients
    from pacs_hdfs.dicom.stored import read_bytes
    from pacs_hdfs.schema import row_key
    hbase, hdfs = clients.hbase(scratch), clients.hdfs(scratch)
    study = remap_uid(keys.uid, series[0].StudyInstanceUID)
    rows = hbase.scan("instance", row_prefix=row_key(study) + b"\x00",
                      columns=[b"l:path", b"l:offset", b"l:length", b"l:sha256"])
    verified = 0
    for key, row in rows:
        read_bytes(hbase, hdfs, key, row)  # raises on a wrong byte
        verified += 1
    expected = {row_key(study, remap_uid(keys.uid, ds.SeriesInstanceUID),
                        remap_uid(keys.uid, ds.SOPInstanceUID)) for ds in series}
    rejected = path.edge_home / "hospital" / "edge" / "rejected"
    return {"sent": len(series), "rows": len(rows), "verified": verified,
            "missing": len(expected - {k for k, _ in rows}),
            "extra": len({k for k, _ in rows} - expected),
            "left_in_spool": len(list(path.spool.glob("*.dcm"))),
            "rejected": len(list(rejected.glob("*.dcm"))) if rejected.exists() else 0}


def edge_stages(path) -> dict:
    out = subprocess.run([str(Path(sys.executable).parent / "pacs"), "edge", "status", "--json"],
                         env=path.edge.env, capture_output=True, text=True, timeout=60)
    stages = json.loads(out.stdout).get("stages", {}) if out.returncode == 0 else {}
    return {s: v.get("cpu_ms") for s, v in stages.items()}


def run_edge(tmp: Path, scratch, sets: dict, outage: float, outage_images: int) -> dict:
    """(a), (b), (c), (d) and the stage costs for the edge path."""
    from deid import remap_uid
    from pacs_hdfs import clients
    from tests.fault_battery import DicomPath, _free_port
    hbase, hdfs = clients.hbase(scratch), clients.hdfs(scratch)
    path = DicomPath(tmp / "edge", _free_port(), scratch)
    path.start()
    out: dict = {"seconds": {}, "durable_s": {}, "durable_ratio": {}}
    try:
        keys = path.keys()
        for assocs, (parts, series) in sets.items():
            study = remap_uid(keys.uid, series[0].StudyInstanceUID)
            stored = sum(p.stat().st_size for part in parts for p in part)
            before = space_consumed(hdfs)
            t0 = time.perf_counter()
            ack = send("PACS", path.port, parts)
            durable = wait_arrived(path, hbase, study, len(series), t0)
            out["seconds"][assocs] = round(ack, 2)
            out["durable_s"][assocs] = round(durable, 2)
            out["durable_ratio"][assocs] = round(durable / ack, 2)
            out[f"hdfs_bytes_per_byte_{assocs}"] = round(
                (space_consumed(hdfs) - before) / stored, 2)
            print(f"edge x{assocs}: ack {ack:.1f} s, durable+queryable {durable:.1f} s",
                  flush=True)
        out["stages_cpu_ms"] = edge_stages(path)
        if outage:
            out["outage"] = run_outage(tmp, path, scratch, max(sets), outage, keys,
                                       outage_images)
    finally:
        path.stop()
    return out


def run_outage(tmp: Path, path, scratch, assocs: int, outage: float, keys,
               images: int) -> dict:
    """(d): the gateway stops for `outage` s in the middle of a send; nothing lost or doubled."""
    parts, series = make_sets(tmp / "outage", images, assocs)
    result: dict = {"images": len(series), "outage_s": outage}

    def mdc_down():
        time.sleep(2)
        path.gateway.stop()
        time.sleep(outage)
        path.gateway.start()
    t = threading.Thread(target=mdc_down)
    t.start()
    result["ack_s"] = round(send("PACS", path.port, parts), 2)
    t.join()
    t0 = time.monotonic()
    if not path.wait_forwarded(timeout=1800):
        raise RuntimeError("the edge did not drain after the outage")
    result["drain_after_outage_s"] = round(time.monotonic() - t0, 2)
    result.update(check_exactly_once(path, scratch, series, keys))
    result["ok"] = (result["rows"] == result["verified"] == result["sent"]
                    and not (result["missing"] or result["extra"] or result["left_in_spool"]
                             or result["rejected"]))
    print(f"outage: {result}", flush=True)
    return result


def main() -> None:
    # a stopped run still deletes its scratch namespace (the `finally` below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--receivers", default="discard,orthanc,edge")
    ap.add_argument("--outage", type=float, default=60.0, help="0 = no outage run")
    ap.add_argument("--outage-images", type=int, default=1000)
    ap.add_argument("--no-record", action="store_true", help="print only (smoke runs)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    scratch = scratch_settings("ingest")
    receivers = args.receivers.split(",")
    result: dict = {"images": args.images, "parallel": args.parallel, "seconds": {}}
    try:
        sets = {1: make_sets(tmp / "one", args.images, 1),
                args.parallel: make_sets(tmp / "many", args.images, args.parallel)}
        mb = sum(p.stat().st_size for part in sets[1][0] for p in part) / 1e6
        result["mb"] = round(mb, 1)
        for name, start, ae, port in (("discard", start_discard, "DISCARD", DISCARD_PORT),
                                      ("orthanc", lambda: start_orthanc(tmp), "ORTHANC",
                                       ORTHANC_PORT)):
            if name not in receivers:
                continue
            proc = start()
            try:
                wait_echo(ae, port)
                for assocs, (parts, _series) in sets.items():
                    result["seconds"][f"{name}_{assocs}"] = round(send(ae, port, parts), 2)
                    print(f"{name} x{assocs}: {result['seconds'][f'{name}_{assocs}']} s",
                          flush=True)
            finally:
                stop(proc)
        if "edge" in receivers:
            from pacs_hdfs.storage import init_storage
            init_storage(scratch)
            # fresh UIDs: the edge must not see the other receivers' studies as re-sends
            edge_sets = {1: make_sets(tmp / "edge-one", args.images, 1),
                         args.parallel: make_sets(tmp / "edge-many", args.images, args.parallel)}
            edge = run_edge(tmp, scratch, edge_sets, args.outage, args.outage_images)
            for assocs, s in edge.pop("seconds").items():
                result["seconds"][f"edge_{assocs}"] = s
            result["edge"] = edge
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if "edge" in receivers:
            drop_scratch(scratch)
    n, p = args.images, args.parallel
    rate = {k: round(n / v, 1) for k, v in result["seconds"].items()}
    result["inst_per_s"] = rate
    for k, v in rate.items():
        result[f"{k}_inst_s"] = v
    if f"orthanc_{p}" in rate and f"edge_{p}" in rate:
        result["ratio_edge_vs_orthanc"] = round(rate[f"edge_{p}"] / rate[f"orthanc_{p}"], 2)
    if f"discard_{p}" in rate and f"edge_{p}" in rate:
        result["ratio_edge_vs_discard"] = round(rate[f"edge_{p}"] / rate[f"discard_{p}"], 2)
    if "edge" in result:
        e = result["edge"]
        result["durable_ratio_4"] = e["durable_ratio"].get(p)
        result["hdfs_bytes_per_byte"] = e.get(f"hdfs_bytes_per_byte_{p}")
        result["outage_ok"] = e.get("outage", {}).get("ok")
    print(json.dumps(result, indent=2, default=str))
    if not args.no_record:
        record(BENCH_DIR, result, ["images", "parallel", "edge_1_inst_s", f"edge_{p}_inst_s",
                                   "orthanc_1_inst_s", f"orthanc_{p}_inst_s",
                                   f"discard_{p}_inst_s", "ratio_edge_vs_orthanc",
                                   "ratio_edge_vs_discard", "durable_ratio_4",
                                   "hdfs_bytes_per_byte", "outage_ok"])


if __name__ == "__main__":
    main()
