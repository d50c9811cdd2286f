"""`pacs demo`: everything up, demo data loaded once, one job run, URLs and logins printed.

Demo data goes through the real front doors, as a hospital's would: a synthetic HIS export (with
synthetic PHI) is synced by the HAS over HTTPS/mTLS to the gateway; for every imaging exam of
that export a small synthetic series (deploy/demo_images.py: modality from the exam kind, same
national id, the exam's accession number, a handful of 128x128 images) is sent by C-STORE to
the hospital edge, which de-identifies it, spools it and forwards it over STOW-RS to the data
center (the demo waits until they have arrived), so every "Show examination" opens a study; a
larger synthetic visit set (no PHI, already pseudonymous) is put into the Parquet store so the
statistics have something to count.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pacs_hdfs.cli_apps import app, console
from pacs_hdfs.settings import get_settings

DEMO_USERS = (("teacher", "teacher"), ("analyst", "analyst"), ("admin", "admin"))
DEMO_PASSWORD = "demo-password"


def pacs(*args: str, env: dict | None = None) -> None:
    """Run one `pacs` sub-command the way a user would; fail loudly."""
    console.log("pacs " + " ".join(args))
    subprocess.run([sys.executable, "-m", "pacs_cli", *args], check=True,
                   env={**os.environ, **(env or {})})


def demo_study_choices(export: Path, studies: int = 3) -> list[tuple[dict, str, str]]:
    """(patient, accession, study date YYYYMMDD) of the first CT exam of each of the first
    ``studies`` patients with one in the export: the studies the demo sends."""
    from hl7_gateway.hospital.his_export import read_export

    chosen, seen = [], set()
    for rec in read_export(export):
        person = rec["patient"]
        for exam in rec.get("exams", []):
            if exam.get("kind") == "CT" and exam.get("accession") and person["national_id"] not in seen:
                seen.add(person["national_id"])
                chosen.append((person, exam["accession"], rec["admission"][:10].replace("-", "")))
        if len(chosen) >= studies:
            break
    return chosen[:studies]


def send_demo_studies(export: Path, settings, studies: int = 3, slices: int = 16, *,
                      size: int = 256, host: str = "127.0.0.1", port: int | None = None,
                      ae_title: str | None = None) -> int:
    """C-STORE small synthetic CT series for the ``demo_study_choices`` of the export, to the
    hospital edge at host:port (default: the configured one); returns the images acknowledged."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    from pacs_hdfs.dicom.synthetic import ct_series

    ae = AE(ae_title="DEMO")
    ae.add_requested_context(CTImageStorage)
    sent = 0
    for person, accession, date in demo_study_choices(export, studies):
        name = f"{person['last_name']}^{person['first_name']}"
        assoc = ae.associate(host, port or settings.edge_port,
                             ae_title=ae_title or settings.edge_ae_title)
        if not assoc.is_established:
            raise RuntimeError("the edge refused the demo association")
        for ds in ct_series(slices, patient_id=person["national_id"], patient_name=name,
                            size=size, accession=accession, study_date=date):
            status = assoc.send_c_store(ds)
            if getattr(status, "Status", None) == 0:
                sent += 1
        assoc.release()
    return sent


def demo_examinations(export: Path) -> list[tuple[dict, str, str, str]]:
    """(patient, exam kind, accession, study date YYYYMMDD) of every imaging exam of the export
    whose kind has a demo series (`demo_images.KINDS`), in export order: what makes every
    "Show examination" of the demo open a study."""
    from deploy.demo_images import KINDS
    from hl7_gateway.hospital.his_export import read_export

    out = []
    for rec in read_export(export):
        day = rec["admission"][:10].replace("-", "")
        out += [(rec["patient"], e["kind"], e["accession"], day) for e in rec.get("exams", [])
                if e.get("accession") and e.get("kind") in KINDS]
    return out


def send_demo_examinations(export: Path, settings, *, host: str = "127.0.0.1",
                           port: int | None = None, ae_title: str | None = None,
                           progress=None) -> tuple[int, int]:
    """C-STORE a small synthetic series (`demo_images.exam_series`) for every imaging exam of
    the export to the hospital edge, over one association, like a modality would; returns
    (studies, images acknowledged). A store the edge refuses raises: the demo must not look
    complete when it is not."""
    from pynetdicom import AE
    from pydicom.uid import ExplicitVRLittleEndian

    from deploy.demo_images import KINDS, exam_series

    exams = demo_examinations(export)
    ae = AE(ae_title="DEMO")
    # the edge answers after de-identifying and fsyncing; its first object also loads the
    # pixel rules, and on a busy machine that can take longer than pynetdicom's 30 s
    ae.dimse_timeout = ae.acse_timeout = 180
    for sop_class in sorted({k.sop_class for k in KINDS.values()}):
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate(host, port or settings.edge_port,
                         ae_title=ae_title or settings.edge_ae_title)
    if not assoc.is_established:
        raise RuntimeError("the edge refused the demo association")
    sent = 0
    try:
        for n, (person, kind, accession, date) in enumerate(exams, 1):
            for ds in exam_series(kind, patient_id=person["national_id"],
                                  patient_name=f"{person['last_name']}^{person['first_name']}",
                                  accession=accession, study_date=date,
                                  sex=person.get("sex", "")):
                status = assoc.send_c_store(ds)
                if getattr(status, "Status", None) != 0:
                    raise RuntimeError(f"the edge answered {getattr(status, 'Status', None)} "
                                       f"for a demo {kind} image")
                sent += 1
            if progress and n % 50 == 0:
                progress(f"{n}/{len(exams)} demo examinations sent")
    finally:
        assoc.release()
    return len(exams), sent


def wait_forwarded(settings, expected: int, timeout: float = 300) -> int:
    """Wait until the edge's spool is empty (everything forwarded and acknowledged by the
    data center); return how many images the data center's index holds for the demo."""
    from deid.edge.layout import EdgePaths
    from pacs_hdfs import clients
    from pacs_hdfs.rows import study
    spool = EdgePaths.from_settings(settings).spool
    deadline = time.monotonic() + timeout
    while any(spool.glob("*.dcm")) and time.monotonic() < deadline:
        time.sleep(1)
    rows = clients.hbase(settings).scan("study", columns=[study.INSTANCES])
    return sum(study.instances(r) for _k, r in rows)


def demo_export(settings, patients: int = 40, visits: int = 200) -> Path:
    """The demo's synthetic HIS export (with PHI) in the hospital folder: created 0600 in the
    0700 folder before `pacs has generate` fills it."""
    from pacs_hdfs.hardening import private_dir, touch_private
    export = touch_private(private_dir(settings.path("hospital")) / "demo-his-export.jsonl")
    pacs("has", "generate", "--patients", str(patients), "--visits", str(visits),
         "--out", str(export))
    return export


def load_demo_data(settings) -> None:
    from analytics_jobs.icd10.generator import generate_visits
    from analytics_jobs.icd10.upload import upload_dataset
    from pacs_hdfs import clients

    export = demo_export(settings)
    pacs("has", "sync", str(export))
    started = time.monotonic()
    studies, sent = send_demo_examinations(export, settings, progress=console.log)
    console.log(f"C-STORE demo examinations to the edge: {studies} studies, {sent} images "
                f"acknowledged in {time.monotonic() - started:.1f} s")
    console.log(f"arrived at the data center: {wait_forwarded(settings, sent)} images")
    local = settings.path("data", "demo-visits")
    generate_visits(local, 200_000, months=24, first_month="2023-01", seed=1)
    files = upload_dataset(clients.hdfs(settings), local, "visits/parquet", prefix="demo-")
    console.log(f"statistics demo visits: 200,000 in {files} Parquet files")
    for name, role in DEMO_USERS:
        pacs("user", "add", name, "--role", role, env={"PACS_USER_PASSWORD": DEMO_PASSWORD})


@app.command("demo")
def demo() -> None:
    """`pacs up`, load the demo data once, run one job, print URLs and demo logins."""
    settings = get_settings()
    pacs("up")
    marker = settings.path("demo-loaded")
    if not marker.exists():
        time.sleep(2)  # services bind their ports
        load_demo_data(settings)
        marker.write_text(time.strftime("%Y-%m-%d %H:%M:%S"))
    pacs("job", "submit", "icd10-age", "--from", "2023-01-01", "--to", "2024-12-31", "--wait")
    scheme = "https" if settings.portal_cert else "http"
    console.print(f"""
[bold green]The Medical Data Center is running.[/bold green]
  portal        {scheme}://127.0.0.1:{settings.portal_port}/   logins: teacher / analyst / admin, password {DEMO_PASSWORD}
  hospital edge AE {settings.edge_ae_title} on 127.0.0.1:{settings.edge_port}: modalities send here   (try: echoscu -aec {settings.edge_ae_title} 127.0.0.1 {settings.edge_port}; status: .venv/bin/pacs edge status)
  MDC DICOM     AE {settings.mdc_dimse_ae_title} on 127.0.0.1:{settings.mdc_dimse_port}: Q/R for calling AEs listed in mdc_dimse_qr_aes (none by default)
  HL7 gateway   https://127.0.0.1:{settings.gateway_port}/ (mutual TLS; client cert in {settings.path('certs')})
  WebHDFS       {settings.webhdfs_url}   HBase Thrift {settings.thrift_host}:{settings.thrift_port}   Spark {settings.spark_master_webui}
  status        .venv/bin/pacs cluster status      stop: .venv/bin/pacs down
""")
