"""C-STORE ingest throughput: `pacs scp` (de-identify + durable HDFS + HBase index) side by side
with Orthanc (Debian package, SQLite + filesystem) and a pynetdicom SCP that discards the data
(the ceiling set by storescu and loopback). Sender: dcmtk `storescu`, 1 and N parallel
associations, generated 512x512 16-bit CT images (~0.5 MB each).

    .venv/bin/python -m benchmarks.ingest.bench_ingest [--images 2000] [--parallel 4]

Needs the running cluster (PACS_HOME), dcmtk and orthanc. Ports: 11112 (pacs scp),
11114 (discarding SCP), 4242/8042 (Orthanc). `pacs scp` stores into a scratch HDFS root and
HBase table prefix that are deleted at the end. Writes results.json and a RESULTS.md row.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import drop_scratch, record, scratch_env, scratch_settings  # noqa: E402
from pacs_hdfs.storage import init_storage  # noqa: E402
from pacs_hdfs.dicom.synthetic import ct_series, write_files

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
RECEIVERS = {"discard": ("DISCARD", 11114), "orthanc": ("ORTHANC", 4242), "pacs": ("PACS", 11112)}


def make_sets(root: Path, n: int, parts: int) -> list[list[Path]]:
    """One directory of `n` new images (fresh UIDs) split into `parts` subdirectories."""
    series = ct_series(n, patient_id=f"BENCH-{root.name}", patient_name="Bench^Patient")
    per = -(-n // parts)
    return [write_files(series[i * per:(i + 1) * per], root / f"part{i}") for i in range(parts)]


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
            "ae.start_server(('127.0.0.1', 11114), block=True,"
            " evt_handlers=[(evt.EVT_C_STORE, lambda e: 0)])\n")
    return subprocess.Popen([sys.executable, "-c", code])


def start_orthanc(tmp: Path) -> subprocess.Popen:
    cfg = {"Name": "bench", "StorageDirectory": str(tmp / "storage"),
           "IndexDirectory": str(tmp / "index"), "DicomAet": "ORTHANC", "DicomPort": 4242,
           "HttpPort": 8042, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
           "DicomCheckCalledAet": False, "Plugins": []}
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


def start_pacs(tmp: Path, settings) -> subprocess.Popen:
    env = {**scratch_env(settings), "PACS_SCP_VAULT": str(tmp / "vault.bin"),
           "PACS_SCP_MASTER_KEY_FILE": str(tmp / "master.key"),
           "PACS_SCP_LOG": str(tmp / "scp.log"), "PACS_SCP_BIND": HOST}
    return subprocess.Popen([str(Path(sys.executable).parent / "pacs"), "scp"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--receivers", default="discard,orthanc,pacs")
    ap.add_argument("--no-record", action="store_true", help="print only (smoke runs)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    scratch = scratch_settings("ingest")   # pacs stores here; deleted at the end
    try:
        sets = {1: make_sets(tmp / "one", args.images, 1),
                args.parallel: make_sets(tmp / "many", args.images, args.parallel)}
        mb = sum(p.stat().st_size for part in sets[1] for p in part) / 1e6
        starters = {"discard": lambda: start_discard(), "orthanc": lambda: start_orthanc(tmp),
                    "pacs": lambda: start_pacs(tmp, scratch)}
        seconds: dict[str, float] = {}
        if "pacs" in args.receivers:
            init_storage(scratch)
        for name in args.receivers.split(","):
            start = starters[name]
            proc = start()
            try:
                wait_echo(*RECEIVERS[name])
                for assocs, parts in sets.items():
                    seconds[f"{name}_{assocs}"] = round(send(*RECEIVERS[name], parts), 2)
                    print(f"{name} x{assocs}: {seconds[f'{name}_{assocs}']} s", flush=True)
            finally:
                stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if "pacs" in args.receivers:
            drop_scratch(scratch)
    n, p = args.images, args.parallel
    rate = {k: round(n / v, 1) for k, v in seconds.items()}
    if args.no_record:
        print(json.dumps({"seconds": seconds, "inst_per_s": rate}, indent=2))
        return
    result = {"images": n, "mb": round(mb, 1), "parallel": p, "seconds": seconds,
              "inst_per_s": rate, "mb_per_s": {k: round(mb / v, 1) for k, v in seconds.items()},
              f"pacs_{p}_inst_s": rate[f"pacs_{p}"], f"orthanc_{p}_inst_s": rate[f"orthanc_{p}"],
              f"discard_{p}_inst_s": rate[f"discard_{p}"],
              "pacs_1_inst_s": rate["pacs_1"], "orthanc_1_inst_s": rate["orthanc_1"],
              "ratio_pacs_vs_orthanc": round(rate[f"pacs_{p}"] / rate[f"orthanc_{p}"], 2),
              "ratio_pacs_vs_discard": round(rate[f"pacs_{p}"] / rate[f"discard_{p}"], 2)}
    record(BENCH_DIR, result, ["images", "parallel", "pacs_1_inst_s", f"pacs_{p}_inst_s",
                               "orthanc_1_inst_s", f"orthanc_{p}_inst_s", f"discard_{p}_inst_s",
                               "ratio_pacs_vs_orthanc", "ratio_pacs_vs_discard"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
