"""The pure parts of `pacs backup`: names, the manifest, the namespace check and the plan that
turns an HDFS snapshot diff into the steps that bring the live tree back to the snapshot.

HDFS has snapshots but no "restore": the NameNode reports what changed since a snapshot
(GETSNAPSHOTDIFF), and the steps here undo exactly that, so a restore copies only what was
deleted or changed (batch files are immutable, so usually only what was deleted) and deletes
what was created after the backup, instead of copying the whole archive back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

MANIFEST_DIR = "backup"          # under the HDFS root; never restored over (see `restore_steps`)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")

# HBase tables are snapshotted one after another, not at one instant. A DICOM commit writes
# instance rows, then parent rows, then the sop row (the commit marker), then counters; taking
# the marker table first means any commit whose marker is in the backup has its instance and
# parent rows in it too. Counters may be ahead of the markers (`pacs fsck --repair` recounts).
SNAPSHOT_ORDER = ("sop", "series", "study", "subject", "search", "instance")


def backup_name(now: datetime | None = None, label: str = "") -> str:
    """A sortable, snapshot-safe name: `20261203T170501Z` or `20261203T170501Z-label`."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{label}" if label else stamp
    check_name(name)
    return name


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(f"backup name {name!r}: letters, digits, '.', '_' and '-' only")
    return name


def hbase_snapshot_name(table: str, backup: str) -> str:
    """One HBase snapshot per table and backup, named by both (`pacs_instance-20261203T...`)."""
    return f"{table}-{backup}"


def snapshot_order(shorts) -> list[str]:
    """Short table names in the order they are snapshotted (see SNAPSHOT_ORDER)."""
    rank = {s: i for i, s in enumerate(SNAPSHOT_ORDER)}
    return sorted(shorts, key=lambda s: (rank.get(s, len(rank)), s))


@dataclass(frozen=True)
class Manifest:
    """What one backup holds; stored as JSON on HDFS (`<root>/backup/<name>.json`) and in
    `$PACS_HOME/backups/`."""
    name: str
    created: str                      # ISO 8601 UTC
    code_version: str
    schema_version: int
    hdfs_root: str
    hdfs_snapshot: str                # the snapshot's name under <root>/.snapshot/
    hbase_table_prefix: str
    hbase: dict                       # short name -> {"table", "snapshot", "rows"}
    seconds: dict                     # {"hbase": s, "hdfs": s, "total": s}
    kind: str = "manual"              # "manual" | "pre-restore"

    def to_json(self) -> dict:
        return {"format": 1, **self.__dict__}

    @classmethod
    def from_json(cls, d: dict) -> "Manifest":
        if d.get("format") != 1:
            raise ValueError(f"unknown backup manifest format {d.get('format')!r}")
        fields = {k: v for k, v in d.items() if k != "format"}
        return cls(**fields)


def check_namespace(m: Manifest, hdfs_root: str, prefix: str) -> None:
    """A restore touches only this namespace: the manifest must name this HDFS root and only
    tables of this table prefix (a manifest copied from elsewhere is refused)."""
    if m.hdfs_root.rstrip("/") != hdfs_root.rstrip("/"):
        raise ValueError(f"backup {m.name} is of HDFS root {m.hdfs_root}, not {hdfs_root}")
    if m.hbase_table_prefix != prefix:
        raise ValueError(f"backup {m.name} is of table prefix {m.hbase_table_prefix!r}, "
                         f"not {prefix!r}")
    for short, t in m.hbase.items():
        if t["table"] != f"{prefix}_{short}" or not t["snapshot"].startswith(f"{prefix}_"):
            raise ValueError(f"backup {m.name}: table {t['table']} / snapshot {t['snapshot']} "
                             f"is outside the prefix {prefix!r}")


@dataclass(frozen=True)
class Step:
    action: str      # "delete" the live path | "copy" a file or whole tree back from the
    #                  snapshot | "refresh" a file from the snapshot (a directory: nothing)
    path: str        # relative to the snapshot root


def restore_steps(diff: list[dict], keep: tuple[str, ...] = (MANIFEST_DIR,)) -> list[Step]:
    """Steps that undo a GETSNAPSHOTDIFF report taken from the snapshot to the live tree.

    CREATE -> delete; DELETE -> copy back; MODIFY -> refresh (a file's content is copied back;
    a directory's MODIFY only says its children changed, which have entries of their own);
    RENAME -> delete the target, copy the source back. Paths under `keep` (the manifests) and
    the root itself are left alone. Deletes come first; a path whose ancestor is copied whole is
    not copied again.
    """
    deletes: set[str] = set()
    copies: set[str] = set()        # whole files or trees
    refreshes: set[str] = set()     # files only
    for e in diff:
        src = _rel(e["sourcePath"])
        kind = e["type"]
        if kind == "CREATE":
            deletes.add(src)
        elif kind == "DELETE":
            copies.add(src)
        elif kind == "MODIFY":
            refreshes.add(src)
        elif kind == "RENAME":
            deletes.add(_rel(e["targetPath"]))
            copies.add(src)
        else:
            raise ValueError(f"unknown snapshot diff entry type {kind!r}")

    def kept(p: str) -> bool:
        return p == "" or any(p == k or p.startswith(k + "/") for k in keep)

    def under(p: str, roots: set[str]) -> bool:
        return any(p.startswith(r + "/") for r in roots)

    steps = [Step("delete", p) for p in sorted(deletes)
             if not kept(p) and not under(p, deletes)]
    steps += [Step("copy", p) for p in sorted(copies)
              if not kept(p) and not under(p, copies)]
    steps += [Step("refresh", p) for p in sorted(refreshes - copies)
              if not kept(p) and not under(p, copies)]
    return steps


def _rel(p: str) -> str:
    return p.strip("/").removeprefix("./").strip("/") if p not in (".", "./") else ""
