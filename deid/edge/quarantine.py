"""The edge's quarantine: objects held for burned-in PHI review, and the decisions on them.

Which objects are held is decided by the rules in `deid.quarantine` (at receive time); this
module lists them and carries out a reviewer's decision, for the CLI (`pacs edge quarantine
...`) and the review page alike. It works on the folders directly, so it runs in any process
while the edge runs:

* release: the object moves to `spool/` (rename + fsync of both folders), its sidecar is
  deleted, and the running edge's forwarder picks it up at its next spool rescan;
* reject: the object and its sidecar are deleted: it never leaves the hospital.

Each decision is appended to `audit.log` (one JSON line: time, action, SOP Instance UID, who,
reason held) and fsync'd before the call returns.
"""
from __future__ import annotations

import getpass
import json
import time

from deid.edge import durable
from deid.edge.layout import SUFFIX, EdgePaths, safe_uid
from deid.edge.spool import Hold, read_json


class QuarantineError(ValueError):
    """No such held object, or it cannot be moved."""


def _hold(paths: EdgePaths, sop_uid: str) -> Hold:
    sop_uid = safe_uid(sop_uid)
    if not paths.object(paths.quarantine, sop_uid).is_file():
        raise QuarantineError(f"{sop_uid} is not held in the edge quarantine")
    doc = read_json(paths.meta(paths.quarantine, sop_uid)) or {"sop_uid": sop_uid,
                                                                "reason": "(no sidecar)",
                                                                "held_at": 0}
    return Hold.from_json(doc)


def list_held(paths: EdgePaths) -> list[dict]:
    """Every held object, oldest first: the sidecar's fields (de-identified UIDs, reason,
    held_at epoch seconds, size)."""
    out = []
    for f in paths.quarantine.glob(f"*{SUFFIX}"):
        try:
            out.append(_hold(paths, f.stem).to_json())
        except (QuarantineError, ValueError):
            continue
    out.sort(key=lambda h: (h.get("held_at") or 0, h["sop_uid"]))
    return out


def show(paths: EdgePaths, sop_uid: str) -> dict:
    """One held object: its sidecar plus where the file is."""
    hold = _hold(paths, sop_uid)
    return {**hold.to_json(), "path": str(paths.object(paths.quarantine, hold.sop_uid))}


def object_path(paths: EdgePaths, sop_uid: str):
    return paths.object(paths.quarantine, _hold(paths, sop_uid).sop_uid)


def audit(paths: EdgePaths, action: str, sop_uid: str, who: str, **extra) -> dict:
    entry = {"time": time.time(), "action": action, "sop_uid": sop_uid, "who": who, **extra}
    durable.append_line(paths.audit, json.dumps(entry, sort_keys=True))
    return entry


def release(paths: EdgePaths, sop_uid: str, who: str | None = None) -> dict:
    """Move a held object to the spool (it will be forwarded); audited."""
    hold = _hold(paths, sop_uid)
    src = paths.object(paths.quarantine, hold.sop_uid)
    dst = paths.object(paths.spool, hold.sop_uid)
    try:
        durable.move(src, dst)
    except FileExistsError:
        if not durable.same_content(dst, src.read_bytes()):
            raise QuarantineError(f"{hold.sop_uid}: a different object with this UID is "
                                  "already in the spool") from None
        src.unlink()
    except OSError as e:
        raise QuarantineError(f"cannot release {hold.sop_uid}: {e.strerror}") from e
    paths.meta(paths.quarantine, hold.sop_uid).unlink(missing_ok=True)
    entry = audit(paths, "release", hold.sop_uid, who or cli_user(), reason=hold.reason)
    return {"sop_uid": hold.sop_uid, "state": "released", "audit": entry}


def reject(paths: EdgePaths, sop_uid: str, who: str | None = None) -> dict:
    """Delete a held object for good (it never leaves the hospital); audited."""
    hold = _hold(paths, sop_uid)
    paths.object(paths.quarantine, hold.sop_uid).unlink(missing_ok=True)
    paths.meta(paths.quarantine, hold.sop_uid).unlink(missing_ok=True)
    durable.fsync_dir(paths.quarantine)
    entry = audit(paths, "reject", hold.sop_uid, who or cli_user(), reason=hold.reason)
    return {"sop_uid": hold.sop_uid, "state": "rejected", "audit": entry}


def cli_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in a container
        return "cli"
