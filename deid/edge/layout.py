"""Where the edge keeps its files, all under `$PACS_HOME/hospital/edge/` (0700).

| path | holds |
|---|---|
| `tmp/` | objects being written; anything here at start is a crash leftover and is deleted |
| `spool/<sop>.dcm` | de-identified objects ready to forward, oldest (mtime) first |
| `quarantine/<sop>.dcm` + `<sop>.json` | held for burned-in PHI review: reason, time, UIDs |
| `rejected/<sop>.dcm` + `<sop>.json` | refused for good by the MDC, with its reason, for an admin |
| `state.json` | what the running edge reports: receive counters, stage timings, pid |
| `forwarder.json` | what the forwarder reports: forwarded counts, rate, state, last error |
| `audit.log` | quarantine decisions, one JSON line each |
| `edge.lock` | held (flock) by the one running edge of this home |

`<sop>` is the *de-identified* SOP Instance UID (`2.25.<digits>`), safe in file names and logs.
The review page's users live next to the vault, in `$PACS_HOME/hospital/edge_users.json`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pacs_hdfs.hardening import private_dir
from pacs_hdfs.settings import Settings

SUFFIX = ".dcm"
META_SUFFIX = ".json"
#: what a de-identified SOP Instance UID may look like before it becomes part of a path
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def safe_uid(uid: str) -> str:
    """`uid` if it is a plain dotted-digit UID (<= 64 chars), else ValueError: keeps anything
    a peer or a URL sends from naming a path outside the edge folders."""
    uid = str(uid).strip("\x00 ")
    if not (0 < len(uid) <= 64 and UID_RE.match(uid)):
        raise ValueError("not a valid SOP Instance UID")
    return uid


@dataclass(frozen=True)
class EdgePaths:
    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> "EdgePaths":
        return cls(settings.path("hospital", "edge"))

    tmp = property(lambda self: self.root / "tmp")
    spool = property(lambda self: self.root / "spool")
    quarantine = property(lambda self: self.root / "quarantine")
    rejected = property(lambda self: self.root / "rejected")
    state = property(lambda self: self.root / "state.json")
    forwarder_state = property(lambda self: self.root / "forwarder.json")
    audit = property(lambda self: self.root / "audit.log")
    lock = property(lambda self: self.root / "edge.lock")
    users = property(lambda self: self.root.parent / "edge_users.json")

    def create(self) -> "EdgePaths":
        private_dir(self.root.parent)
        for d in (self.root, self.tmp, self.spool, self.quarantine, self.rejected):
            private_dir(d)
        return self

    def object(self, folder: Path, sop_uid: str) -> Path:
        return folder / f"{safe_uid(sop_uid)}{SUFFIX}"

    def meta(self, folder: Path, sop_uid: str) -> Path:
        return folder / f"{safe_uid(sop_uid)}{META_SUFFIX}"
