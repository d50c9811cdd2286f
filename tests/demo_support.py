"""The demo's data as `make demo` makes it (pacs_cli/demo.py), in a namespace of a test's or a
benchmark's own: `pacs has generate` (same sizes and seed as `pacs demo` unless told) +
`pacs has sync` to a real gateway, then `pacs_cli.demo.send_demo_examinations` sends the small
synthetic series of every imaging exam (deploy/demo_images.py) by C-STORE to a real `pacs edge`
sharing the HAS's vault, which de-identifies them and forwards them over STOW-RS.

The gateway, edge and MDC processes read the namespace from os.environ (`PACS_HDFS_ROOT`,
`PACS_HBASE_TABLE_PREFIX`, `PACS_HOME`): callers set it, e.g. with
`tests.namespace_support.namespace_environ`.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from pacs_cli.demo import demo_export

#: `pacs demo`'s HIS export size (`demo_export`'s defaults); its seed is `pacs has generate`'s
DEMO_PATIENTS, DEMO_VISITS = (inspect.signature(demo_export).parameters[p].default
                              for p in ("patients", "visits"))
DEMO_SEED = 0


def sync_his_export(work: Path, *, patients: int = DEMO_PATIENTS, visits: int = DEMO_VISITS,
                    seed: int = DEMO_SEED) -> tuple[Path, Path]:
    """`pacs has generate` a HIS export into `work` and `pacs has sync` it to a real gateway
    (started for it, in `work`/gateway) of the namespace os.environ names; (HAS home, export)."""
    from tests.integration.hl7_support import Gateway, run_has
    from tests.portal_support import free_port
    home, export = work / "has", work / "his-export.jsonl"
    run_has(home, "generate", "--patients", str(patients), "--visits", str(visits),
            "--seed", str(seed), "--out", str(export))
    (work / "gateway").mkdir()
    gateway = Gateway(work / "gateway", free_port())
    try:
        gateway.start()
        run_has(home, "sync", str(export), "--url", gateway.url,
                "--certs", str(gateway.certs.directory))
    finally:
        gateway.stop()
    return home, export


def load_demo(work: Path, settings, *, patients: int = DEMO_PATIENTS,
              visits: int = DEMO_VISITS, seed: int = DEMO_SEED,
              timeout: float = 300) -> tuple[int, int]:
    """The demo's visits and examinations into the namespace os.environ names, through the real
    front doors; `work` holds the HAS home, the export, and the services' certificates and logs.
    Returns (studies, images) sent; returns after the edge has forwarded them all."""
    from pacs_cli.demo import send_demo_examinations
    from tests.integration.dicom_support import scp_process, wait_forwarded
    from tests.portal_support import free_port
    home, export = sync_his_export(work, patients=patients, visits=visits, seed=seed)
    (work / "path").mkdir()
    with scp_process(work / "path", free_port(), free_port(), edge_home=home) as scp:
        studies, images = send_demo_examinations(export, settings, port=scp.port,
                                                 ae_title="PACS")
        wait_forwarded(timeout)
    return studies, images


def cases_with_images(settings) -> list[str]:
    """Pseudonyms of the namespace's cases that have at least one study (`subject` rows)."""
    from pacs_hdfs import clients
    from pacs_hdfs.rows import subject
    rows = clients.hbase(settings).scan(subject.TABLE, columns=[subject.STUDIES])
    return sorted(k.decode() for k, row in rows if subject.studies(row))
