"""An acknowledged visit survives a crash: ``kill -9`` of the gateway during a batch stream,
then every visit answered AA is in HBase (readable through the restarted gateway), in the HDFS
archive at the byte range its row names, and in the month's Parquet files.

AA means durable (`hl7_gateway.store`): this test is what keeps that true when the write path
changes (group commit, buffering): if anything acknowledged only lived in memory, it fails."""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import datetime, timedelta

import pytest

from hl7_gateway import visit_parquet
from hl7_gateway.builder import build_batch
from hl7_gateway.hospital.deidentify_visit import HasKeys
from hl7_gateway.hospital.has_client import GatewayClient
from hl7_gateway.hospital.samples import sample_visits
from pacs_hdfs import clients
from tests.integration.hl7_support import Gateway

pytestmark = pytest.mark.cluster
PORT = 8446
CLIENTS, BATCH, BATCHES = 4, 20, 15  # per client; the gateway is killed partway through


def fresh_visits(count: int) -> list:
    """Synthetic visits with fresh keys (new visit ids every run), admitted in the last weeks."""
    keys = HasKeys(visit_key=secrets.token_bytes(64), pseudonym_key=secrets.token_bytes(32))
    base = datetime.now().replace(microsecond=0) - timedelta(days=20)
    return [v.model_copy(update={"admission": base + timedelta(minutes=i), "discharge": None,
                                 "birth_year": None})
            for i, v in enumerate(sample_visits(count, seed=7, keys=keys))]


def test_kill_9_during_batch_stream_loses_no_acknowledged_visit(cluster, settings, tmp_path):
    visits = fresh_visits(CLIENTS * BATCHES * BATCH)
    batches = [visits[i:i + BATCH] for i in range(0, len(visits), BATCH)]
    gw = Gateway(tmp_path, PORT).start()
    acknowledged: list = []
    lock = threading.Lock()

    def stream(mine: list[list]) -> None:
        client = GatewayClient(gw.url, gw.certs, attempts=1, timeout=60)
        try:
            for batch in mine:
                if client.post(build_batch(batch)).type_code == "AA":
                    with lock:
                        acknowledged.extend(batch)
        except Exception:  # noqa: BLE001 - the gateway died under us: stop this stream
            pass
        finally:
            client.close()

    threads = [threading.Thread(target=stream, args=(batches[i::CLIENTS],))
               for i in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 300
        while len(acknowledged) < 3 * BATCH and time.monotonic() < deadline:
            time.sleep(0.05)
        gw.proc.kill()  # SIGKILL: no shutdown hook, no flush of anything held in memory
        gw.proc.wait()
        for t in threads:
            t.join(120)
        assert len(acknowledged) >= 3 * BATCH, "too few acknowledgements before the kill"
        assert len(acknowledged) < len(visits), "the stream ended before the kill"

        gw.start()  # the same certificates and port: a restart
        client = GatewayClient(gw.url, gw.certs)
        hdfs, hbase = clients.hdfs(settings), clients.hbase(settings)
        missing = [v.visit_id for v in acknowledged if client.get_visit(v.visit_id) is None]
        assert not missing, f"{len(missing)} acknowledged visits lost in HBase"
        for visit in acknowledged[:: max(1, len(acknowledged) // 10)]:
            row = hbase.get("visit", visit.visit_id.encode())
            path, offset, length, sha256 = row[b"v:archive"].decode().split(" ")
            data = hdfs.read(path, int(offset), int(length))
            assert hashlib.sha256(data).hexdigest() == sha256
            assert visit.visit_id.encode() in data
        in_parquet = set()
        for month in sorted({v.admission.strftime("%Y-%m") for v in acknowledged}):
            in_parquet.update(visit_parquet.read_visits(hdfs, month).column("visit_id")
                              .to_pylist())
        lost = [v.visit_id for v in acknowledged if v.visit_id not in in_parquet]
        assert not lost, f"{len(lost)} acknowledged visits missing from Parquet"
        client.close()
    finally:
        gw.stop()
