"""Hospital side transport: HTTPS with the HAS client certificate to the MDC gateway.

``GatewayClient`` POSTs HL7 v3 bodies and returns the parsed acknowledgement, retrying what is
worth retrying (connection errors, timeouts, HTTP 502/503/504 with AE STORAGE_UNAVAILABLE) with
exponential backoff; it keeps one keep-alive session. ``sync_export`` drives ``sync_plan`` over a
link table so an interrupted sync resumes without duplicates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from hl7_gateway.ack import parse_ack
from hl7_gateway.certs import CertPaths
from hl7_gateway.hospital.deidentify_visit import HasKeys
from hl7_gateway.hospital.his_export import read_export
from hl7_gateway.hospital.link_table import LinkTable
from hl7_gateway.hospital.phi_screen import PhiScreen
from hl7_gateway.models import Acknowledgement
from hl7_gateway.hospital.sync_plan import next_batches, record_export

RETRY_STATUS = {502, 503, 504}


class GatewayError(RuntimeError):
    """The gateway could not be reached or answered nonsense, after all retries."""


def refused(response: requests.Response) -> GatewayError | None:
    """A 403 of the gateway's identity gate as an error naming its reason (a revoked
    certificate, one that acts for no hospital, an edge certificate on the HL7 routes): not
    worth retrying, and not an unreadable ack either."""
    if response.status_code != 403:
        return None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    reason = answer.get("reason") if isinstance(answer, dict) else None
    detail = answer.get("detail") if isinstance(answer, dict) else None
    return GatewayError(f"the gateway refused this client certificate (HTTP 403"
                        f"{', ' + reason if reason else ''}): {detail or 'forbidden'}")


class GatewayClient:
    def __init__(self, url: str, certs: CertPaths, attempts: int = 10, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.attempts = attempts
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE silently replaces our CA
        self.session.cert = (str(certs.client_cert), str(certs.client_key))
        self.session.verify = str(certs.ca_cert)

    def close(self) -> None:
        self.session.close()

    def _retrying(self, send: Callable[[], requests.Response]) -> requests.Response:
        delay, last = 0.5, None
        for attempt in range(1, self.attempts + 1):
            try:
                response = send()
                if response.status_code not in RETRY_STATUS:
                    return response
                last = f"HTTP {response.status_code}"
            except requests.exceptions.SSLError:
                raise  # a certificate problem does not heal by retrying
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = type(exc).__name__
            if attempt < self.attempts:
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
        raise GatewayError(f"gateway {self.url} failed after {self.attempts} attempts: {last}")

    def post(self, body: bytes) -> Acknowledgement:
        """Send one body, return its acknowledgement (AA/AE/AR)."""
        response = self._retrying(lambda: self.session.post(
            f"{self.url}/hl7/v3", data=body, timeout=self.timeout,
            headers={"Content-Type": "application/xml"}))
        if (error := refused(response)) is not None:
            raise error
        try:
            return parse_ack(response.content)
        except Exception as exc:  # noqa: BLE001 - any unreadable answer
            raise GatewayError(f"unreadable answer (HTTP {response.status_code})") from exc

    def get_visit(self, visit_id: str) -> dict | None:
        response = self._retrying(lambda: self.session.get(
            f"{self.url}/hl7/v3/visits/{visit_id}", timeout=self.timeout))
        if response.status_code == 404:
            return None
        if (error := refused(response)) is not None:
            raise error
        response.raise_for_status()
        return response.json()


@dataclass(frozen=True)
class SyncReport:
    recorded: int
    sent: int
    acked: int
    rejected: int
    counts: dict
    held: int = 0   # refused by the hospital's PHI screen (policy refuse): not sent


def sync_export(export: Path, keys: HasKeys, table: LinkTable, client: GatewayClient,
                batch_size: int = 100, on_batch: Callable[[int, int], None] | None = None,
                on_start: Callable[[int], None] | None = None,
                screen: PhiScreen | None = None) -> SyncReport:
    """Send every not-yet-acknowledged visit of the export; safe to interrupt and rerun.

    Each batch is marked sent before the POST and moved by its ack after, so a crash at any
    point resends at most the in-flight batch, which the MDC stores idempotently.
    """
    before = table.counts()
    visits = record_export(read_export(export), keys, table, screen)
    recorded = sum(table.counts().values()) - sum(before.values())
    todo = len(table.unacknowledged())
    if on_start:
        on_start(todo)
    sent = acked = rejected = 0
    for batch in next_batches(table, visits, batch_size):
        table.mark_sent(batch.visit_ids, batch.batch_id)
        ack = client.post(batch.body)
        table.apply_ack(ack, batch.batch_id)
        sent += len(batch.visits)
        acked += sum(m.type_code == "AA" for m in ack.messages)
        rejected += sum(m.type_code == "AE" for m in ack.messages)
        if on_batch:
            on_batch(len(batch.visits), acked)
    return SyncReport(recorded, sent, acked, rejected, table.counts(), len(table.held()))
