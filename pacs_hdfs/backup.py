"""`pacs backup create / list / restore / delete`: point-in-time backups of one namespace (the
HDFS root and the HBase tables of the prefix), kept inside the cluster as snapshots.

create:  HBase snapshots of every table of the prefix (flushed; rows counted), THEN an HDFS
         snapshot of the root. Files are written before the rows that point at them, and batch
         files are immutable, so every row in the backup points at bytes in the backup. Then a
         manifest: `<root>/backup/<name>.json` on HDFS and `$PACS_HOME/backups/<name>.json`.
restore: only this namespace's tables and root (`backup_plan.check_namespace`). A safety
         backup `pre-restore-...` is taken first (unless told not to), then every table is
         restored from its snapshot, then the HDFS root is brought back to its snapshot by
         undoing the snapshot diff (`backup_plan.restore_steps`), and the live tree is compared
         file by file (path, length) with the snapshot. Manifests (`backup/`) are never touched.
         Anything stored after the backup is gone from the live archive afterwards (it is still
         in the safety backup). Stop the ingest services first.

Snapshots share blocks with the live data and live on the same cluster: they undo mistakes
(deleted studies, a bad upgrade), not the loss of the cluster. docs/BACKUP.md says how to copy
a backup off the cluster, and how the hospital's vault is escrowed (never to the data center).
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime, timezone
from functools import lru_cache

from pacs_hdfs import clients, schema_version
from pacs_hdfs.backup_plan import (MANIFEST_DIR, Manifest, backup_name, check_name,
                                   check_namespace, hbase_snapshot_name, restore_steps,
                                   snapshot_order)
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.settings import REPO_ROOT, Settings
from pacs_hdfs.snapshots import HBaseSnapshots, HdfsSnapshots


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why."""


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version and, in a git checkout, the commit: `0.1.0+54233b7`."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        v = version("pacs-mdc")
    except PackageNotFoundError:
        v = "0+unknown"
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode == 0 and head.stdout.strip():
            v += f"+{head.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return v


def _tables(settings: Settings) -> list[str]:
    """Short names of the schema's tables that exist under this prefix, in snapshot order."""
    from pacs_hdfs.schema import TABLES
    existing = set(clients.hbase(settings).tables())
    return snapshot_order([t.name for t in TABLES if t.name in existing])


def create(settings: Settings, label: str = "", kind: str = "manual", progress=print) -> Manifest:
    name = backup_name(label=label)
    if _read_manifest(settings, name) is not None:
        raise BackupError(f"a backup named {name} exists already")
    prefix = settings.hbase_table_prefix
    hdfs_snaps = HdfsSnapshots(settings)
    t0 = time.monotonic()
    shorts = _tables(settings)
    progress(f"HBase: snapshotting {len(shorts)} tables")
    hbase_snaps = HBaseSnapshots(settings)
    pairs = [(f"{prefix}_{s}", hbase_snapshot_name(f"{prefix}_{s}", name)) for s in shorts]
    try:
        made = hbase_snaps.create(pairs)
        rows = {m["table"]: m for m in made}
        t1 = time.monotonic()
        progress(f"HDFS: snapshot of {settings.hdfs_root}")
        hdfs_snaps.allow()
        hdfs_snaps.create(name)
    except Exception:
        _forget(hbase_snaps, [n for _, n in pairs])   # no half backups left behind
        raise
    t2 = time.monotonic()
    found = schema_version.read(settings)
    m = Manifest(
        name=name, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        code_version=code_version(), schema_version=found.version or schema_version.CURRENT,
        hdfs_root=settings.hdfs_root, hdfs_snapshot=name, hbase_table_prefix=prefix,
        hbase={s: {"table": f"{prefix}_{s}", "snapshot": rows[f"{prefix}_{s}"]["snapshot"],
                   "rows": rows[f"{prefix}_{s}"]["rows"]} for s in shorts},
        seconds={"hbase": round(t1 - t0, 2), "hdfs": round(t2 - t1, 2),
                 "total": round(time.monotonic() - t0, 2)},
        kind=kind)
    _write_manifest(settings, m)
    return m


def list_backups(settings: Settings) -> list[Manifest]:
    """Backups of this namespace, oldest first: the manifests on HDFS, else the local copies."""
    hdfs = clients.hdfs(settings)
    texts = [hdfs.read(i.path) for i in hdfs.list_status(MANIFEST_DIR)
             if i.path.endswith(".json")]
    local = settings.path("backups")
    texts += [p.read_bytes() for p in sorted(local.glob("*.json"))] if local.is_dir() else []
    found: dict[str, Manifest] = {}
    for text in texts:
        m = Manifest.from_json(json.loads(text))
        try:
            check_namespace(m, settings.hdfs_root, settings.hbase_table_prefix)
        except ValueError:
            continue          # another namespace's manifest (copied here): not ours to list
        found.setdefault(m.name, m)
    live = set(HdfsSnapshots(settings).names())
    return sorted((m for m in found.values() if m.hdfs_snapshot in live),
                  key=lambda m: m.name)


def _own_manifest(settings: Settings, name: str):
    """The manifest of backup `name`, refused unless it belongs to this namespace."""
    m = _read_manifest(settings, check_name(name))
    if m is None:
        raise BackupError(f"no backup named {name} in {settings.hdfs_root}")
    try:
        check_namespace(m, settings.hdfs_root, settings.hbase_table_prefix)
    except ValueError as e:
        raise BackupError(str(e)) from e
    return m


def restore(settings: Settings, name: str, safety_backup: bool = True,
            progress=print) -> dict:
    m = _own_manifest(settings, name)
    hdfs_snaps = HdfsSnapshots(settings)
    if m.hdfs_snapshot not in hdfs_snaps.names():
        raise BackupError(f"backup {name}: HDFS snapshot {m.hdfs_snapshot} is gone")
    t0 = time.monotonic()
    safety = None
    if safety_backup:
        progress("safety backup of the archive as it is now")
        safety = create(settings, label="pre-restore", kind="pre-restore", progress=progress)
    t1 = time.monotonic()
    progress(f"HBase: restoring {len(m.hbase)} tables")
    restored = HBaseSnapshots(settings).restore(
        [(t["snapshot"], t["table"]) for t in m.hbase.values()])
    t2 = time.monotonic()
    progress(f"HDFS: bringing {settings.hdfs_root} back to snapshot {m.hdfs_snapshot}")
    diff = hdfs_snaps.diff(m.hdfs_snapshot)
    steps = restore_steps(diff)
    done = hdfs_snaps.apply(m.hdfs_snapshot, steps)
    t3 = time.monotonic()
    # the live tree must now be the snapshot, file by file (manifests aside)
    skip = (MANIFEST_DIR,)
    want = hdfs_snaps.tree(hdfs_snaps.snapshot_path(m.hdfs_snapshot), skip)
    have = hdfs_snaps.tree(settings.hdfs_root, skip + (".snapshot",))
    if want != have:
        missing = sorted(set(want) - set(have))[:5]
        extra = sorted(set(have) - set(want))[:5]
        wrong = sorted(p for p in set(want) & set(have) if want[p] != have[p])[:5]
        raise BackupError(f"HDFS restore of {name} incomplete: missing {missing}, "
                          f"extra {extra}, wrong length {wrong}")
    # the archive is now at the backup's schema version (its records may be newer or missing)
    schema_version.write(settings, m.schema_version)
    t4 = time.monotonic()
    rows = {r["table"].removeprefix(f"{m.hbase_table_prefix}_"): r["rows"] for r in restored}
    return {
        "backup": m.name, "safety_backup": safety.name if safety else None,
        "hbase": {s: {"rows": rows.get(s), "rows_at_backup": t["rows"]}
                  for s, t in m.hbase.items()},
        "hdfs": {"diff_entries": len(diff), "steps": len(steps), **done,
                 "files_verified": len(want)},
        "seconds": {"safety_backup": round(t1 - t0, 2), "hbase": round(t2 - t1, 2),
                    "hdfs": round(t3 - t2, 2), "verify": round(t4 - t3, 2),
                    "total": round(t4 - t0, 2)},
        "next": "run `pacs fsck --repair` if writes were under way when the backup was taken",
    }


def delete(settings: Settings, name: str) -> dict:
    """Delete one backup: its HBase snapshots, its HDFS snapshot (whose blocks HDFS keeps until
    then, even for files deleted since, e.g. by compaction) and its manifests."""
    m = _own_manifest(settings, name)
    deleted = HBaseSnapshots(settings).delete([t["snapshot"] for t in m.hbase.values()])
    hdfs_snaps = HdfsSnapshots(settings)
    if m.hdfs_snapshot in hdfs_snaps.names():
        hdfs_snaps.delete(m.hdfs_snapshot)
    clients.hdfs(settings).delete(_manifest_path(name))
    settings.path("backups", f"{name}.json").unlink(missing_ok=True)
    return {"backup": name, "hbase_snapshots_deleted": sum(d["deleted"] for d in deleted),
            "hdfs_snapshot": m.hdfs_snapshot}


def _forget(hbase_snaps: HBaseSnapshots, names: list[str]) -> None:
    try:
        hbase_snaps.delete(names)
    except StorageError:
        pass          # the original error is the one worth reporting


def drop_backups(settings: Settings) -> None:
    """Delete every backup of this namespace: its HBase snapshots and HDFS snapshots (an HDFS
    directory with snapshots cannot be deleted). For scratch namespaces (`drop_storage`)."""
    hdfs_snaps = HdfsSnapshots(settings)
    names = hdfs_snaps.names()
    if not names and not clients.hdfs(settings).exists(MANIFEST_DIR):
        return                    # never backed up: spare the JVM start
    prefix = re.escape(settings.hbase_table_prefix)
    from pacs_hdfs.schema import TABLES
    shorts = "|".join(re.escape(t.name) for t in TABLES)
    hbase = HBaseSnapshots(settings)
    hbase.delete([s["snapshot"] for s in hbase.list(f"^{prefix}_({shorts})-.*")])
    for n in names:
        hdfs_snaps.delete(n)
    hdfs_snaps.disallow()


def _manifest_path(name: str) -> str:
    return f"{MANIFEST_DIR}/{name}.json"


def _write_manifest(settings: Settings, m: Manifest) -> None:
    body = json.dumps(m.to_json(), indent=2)
    clients.hdfs(settings).write(_manifest_path(m.name), body.encode(), overwrite=True)
    local = settings.path("backups")
    local.mkdir(parents=True, exist_ok=True)
    (local / f"{m.name}.json").write_text(body + "\n")


def _read_manifest(settings: Settings, name: str) -> Manifest | None:
    hdfs = clients.hdfs(settings)
    try:
        if hdfs.exists(_manifest_path(name)):
            return Manifest.from_json(json.loads(hdfs.read(_manifest_path(name))))
    except StorageError:
        pass
    local = settings.path("backups", f"{name}.json")
    if local.is_file():
        return Manifest.from_json(json.loads(local.read_text()))
    return None

