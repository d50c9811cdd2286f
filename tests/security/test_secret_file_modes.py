"""Secrets on disk (issue 15, item 4), after a demo-like setup in a test `$PACS_HOME`.

The tester found `demo-his-export.jsonl` (PHI), `links.sqlite` and `vault.bin.lock` at 0644 in
the hospital folder, and `ca.key` next to the gateway's server key. Here the pieces `make demo`
runs are run in a scratch namespace: `pacs certs init` and `pacs certs edge` (what `pacs up`
does), the gateway, the hospital edge and the MDC DIMSE service, the demo's HIS export
(`pacs_cli.demo.demo_export`), `pacs has sync` to the gateway, and demo CT studies C-STOREd to the
edge until forwarded. Then every file under the hospital folder, the certs folders and the
vault is 0600 and every folder 0700, and the CA key is not in the certs folder.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.security.portal_security_support import namespace

pytestmark = pytest.mark.cluster


def _loose(root: Path) -> list[str]:
    """Paths under (and including) `root` whose mode is not 0700 (folders) / 0600 (files)."""
    out = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_ISSOCK(st.st_mode) or stat.S_IMODE(st.st_mode) == want:
            continue
        out.append(f"{oct(stat.S_IMODE(st.st_mode))} {path}")
    return out


def test_hospital_certs_and_vault_files_are_private_after_a_demo_setup(cluster,
                                                                      tmp_path_factory):
    from pacs_cli.demo import demo_export, send_demo_studies
    from tests.integration.dicom_support import DCMTK, scp_process, wait_forwarded
    from tests.integration.hl7_support import run_has
    from tests.security.dicom_security_support import free_port
    from tests.security.portal_security_support import pacs as run_pacs
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    home = tmp_path_factory.mktemp("demo-home")
    work = tmp_path_factory.mktemp("demo-stack")
    with namespace("secmodes", home) as settings:
        stack = SimpleNamespace(env=dict(os.environ))
        for args in (("certs", "init"), ("certs", "edge", settings.edge_name)):
            out = run_pacs(stack, *args)
            assert out.returncode == 0, out.stderr
        edge_port = free_port()
        with scp_process(work, edge_port, free_port(), edge_home=home) as scp:
            export = demo_export(settings, patients=6, visits=20)
            run_has(home, "sync", str(export), "--url", scp.gateway.url,
                    "--certs", str(scp.gateway.certs.directory))
            sent = send_demo_studies(export, settings, studies=2, slices=3, size=32,
                                     port=edge_port, ae_title="PACS")
            assert sent > 0
            wait_forwarded()
        hospital = home / "hospital"
        present = {p.name for p in hospital.rglob("*")}
        for name in ("demo-his-export.jsonl", "links.sqlite", "vault.bin", "vault.bin.lock",
                     "master.key", "edge"):
            assert name in present, f"the setup did not make {name}: {sorted(present)}"
        assert not (home / "certs" / "ca.key").exists()
        assert (home / "certs-ca-offline" / "ca.key").exists()
        gateway_certs = scp.gateway.certs.directory
        loose = [line for root in (hospital, home / "certs", home / "certs-ca-offline",
                                   gateway_certs, gateway_certs.with_name("certs-ca-offline"))
                 for line in _loose(root)]
        assert loose == [], "\n".join(loose)
