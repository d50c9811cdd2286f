"""The append-only audit trail in the HBase `audit` table, shared by every data-center service
(portal, DICOM Q/R, gateway): one place that writes and reads it.

The row layout (reverse-timestamp key, `e:` columns) is `pacs_hdfs.rows.audit`. There is no
update or delete here on purpose. Other areas call `record(settings, user, action, target,
**details)`.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from pacs_hdfs.rows import audit as audit_rows
from pacs_hdfs.rows.audit import Event

TABLE = audit_rows.TABLE
SCAN_CAP = 50_000          # rows examined per filtered query
#: what the admin page's filter offers; every area records its own actions with `record`
ACTIONS = ("login", "login-failed", "login-throttled", "login-busy", "logout",
           "search", "view-case", "view-study", "view-series", "qido", "wado", "download-study",
           "download", "launch-job", "cancel-job",
           "user-add", "user-role", "user-password", "user-disable", "user-enable",
           "user-delete",
           # the MDC's DIMSE service (pacs_hdfs/dicom/dimse_audit.TRAIL_ACTIONS)
           "dicom-service-start", "dicom-service-stop", "dicom-association",
           "dicom-association-rejected", "dicom-association-end", "dicom-find", "dicom-get",
           "dicom-move",
           # the gateway (hl7_gateway/identity.py): a client certificate refused
           "gateway-refused",
           # study lifecycle (pacs_hdfs/dicom/lifecycle.py: CLI `pacs study`, DICOMweb DELETE)
           "study-delete", "study-reject", "study-restore", "study-compact")

log = logging.getLogger(__name__)


def record(settings, user: str, action: str, target: str = "", *, store=None,
           **details) -> Event:
    """Append one audit event (durable in HBase when this returns)."""
    from pacs_hdfs import clients
    hb = store if store is not None else clients.hbase(settings)
    now_us = time.time_ns() // 1000
    now = now_us / 1e6
    ev = Event(datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
               user or "-", action, target or "", details)
    hb.put(TABLE, audit_rows.key(now_us), audit_rows.encode(ev))
    log.info("audit %s %s %s", ev.user, action, ev.target)
    return ev


def _us(day: str, end: bool) -> int:
    d = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return int(d.timestamp()) * 1_000_000 + (86_400_000_000 - 1 if end else 0)


def query(settings, user: str = "", action: str = "", since: str = "", until: str = "",
          limit: int = 200, store=None) -> list[Event]:
    """Newest first; `since`/`until` are inclusive days (YYYY-MM-DD) and bound the key scan."""
    from pacs_hdfs import clients
    hb = store if store is not None else clients.hbase(settings)
    start = audit_rows.reverse_time(_us(until, True)).encode() if until else None
    stop = (audit_rows.reverse_time(_us(since, False)) + "\x01").encode() if since else None
    out: list[Event] = []
    # Filter in the portal: the trail is scanned newest first and stops at `limit` matches.
    filtered = bool(user or action)
    rows = hb.scan(TABLE, row_start=start, row_stop=stop, batch_size=500,
                   limit=SCAN_CAP if filtered else limit)
    for _, r in rows:
        ev = audit_rows.decode(r)
        if (user and ev.user != user) or (action and ev.action != action):
            continue
        out.append(ev)
        if len(out) >= limit:
            break
    return out
