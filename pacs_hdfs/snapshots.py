"""HDFS and HBase snapshots of one namespace (an HDFS root and an HBase table prefix).

HDFS: through WebHDFS (ALLOWSNAPSHOT, CREATESNAPSHOT, GETSNAPSHOTDIFF, DELETESNAPSHOT). Where
the NameNode checks permissions, ALLOWSNAPSHOT is for the HDFS superuser only; then
`DFSAdmin -allowSnapshot` runs with the Hadoop jars and `$HADOOP_CONF_DIR` (as
`$HADOOP_USER_NAME`), and if that is refused too, the error says which command an HDFS admin
runs once.

HBase: Thrift 1 has no snapshot calls, so `java/HBaseSnapshots.java` (HBase's Admin API, one
JVM for every table) creates, restores, lists and deletes them.
"""
from __future__ import annotations

import json
import posixpath

import requests
from hdfs import HdfsError

from pacs_hdfs import clients
from pacs_hdfs.backup_plan import Step
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.java_tools import run_java
from pacs_hdfs.settings import Settings

LAUNCHER = "HBaseSnapshots.java"


class HdfsSnapshots:
    """Snapshots of `settings.hdfs_root`."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.store = clients.hdfs(settings)
        self.client = self.store.client
        self.root = settings.hdfs_root.rstrip("/") or "/"

    def snapshot_path(self, name: str, rel: str = "") -> str:
        return posixpath.join(self.root, ".snapshot", name, rel).rstrip("/")

    def live_path(self, rel: str) -> str:
        return posixpath.join(self.root, rel).rstrip("/")

    def _webhdfs(self, method: str, op: str, **params) -> dict:
        """One WebHDFS call on the root, on the active NameNode (HA: a standby answers
        StandbyException, and the next URL is tried)."""
        for url in self.s.webhdfs_urls:
            r = requests.request(method, f"{url}/webhdfs/v1{self.root}",
                                 params={"op": op, "user.name": self.s.hdfs_user, **params},
                                 timeout=120)
            if r.status_code >= 400 and "StandbyException" in r.text:
                continue
            if r.status_code >= 400:
                raise StorageError(f"HDFS {op} {self.root} failed: {r.text[:300]}")
            return r.json() if r.content else {}
        raise StorageError(f"HDFS {op} {self.root} failed: no active NameNode among "
                           f"{', '.join(self.s.webhdfs_urls)}")

    def allow(self) -> None:
        """Make the root snapshottable (a no-op when it already is)."""
        try:
            self.client.allow_snapshot(self.root)
            return
        except HdfsError as e:
            if "AccessControlException" not in str(e) and "superuser" not in str(e):
                raise StorageError(f"HDFS allowSnapshot {self.root} failed: {e}") from e
        try:
            run_java(self.s, "hadoop", "org.apache.hadoop.hdfs.tools.DFSAdmin",
                     "-allowSnapshot", self.root, timeout=120)
        except StorageError as e:
            raise StorageError(f"{self.root} is not snapshottable and only an HDFS superuser "
                               f"can make it so: run `hdfs dfsadmin -allowSnapshot {self.root}` "
                               f"once as the HDFS superuser ({e})") from e

    def create(self, name: str) -> str:
        try:
            return self.client.create_snapshot(self.root, name)
        except HdfsError as e:
            raise StorageError(f"HDFS snapshot {name} of {self.root} failed: {e}") from e

    def names(self) -> list[str]:
        """Snapshots of the root ([] when the root is not snapshottable or does not exist)."""
        try:
            return sorted(self.client.list(posixpath.join(self.root, ".snapshot")))
        except HdfsError:
            return []

    def delete(self, name: str) -> None:
        try:
            self.client.delete_snapshot(self.root, name)
        except HdfsError as e:
            raise StorageError(f"HDFS delete snapshot {name} failed: {e}") from e

    def disallow(self) -> None:
        try:
            self.client.disallow_snapshot(self.root)
        except HdfsError:
            pass      # not snapshottable (or not ours to change): nothing to undo

    def diff(self, name: str) -> list[dict]:
        """What changed in the live tree since snapshot `name` (GETSNAPSHOTDIFF to "")."""
        report = self._webhdfs("GET", "GETSNAPSHOTDIFF", oldsnapshotname=name, snapshotname="")
        return report["SnapshotDiffReport"]["diffList"]

    def apply(self, name: str, steps: list[Step]) -> dict:
        """Carry out restore steps from snapshot `name`; returns what was done."""
        done = {"deleted": 0, "copied_files": 0, "copied_bytes": 0}
        for st in steps:
            if st.action == "delete":
                done["deleted"] += bool(self.store.delete(self.live_path(st.path),
                                                          recursive=True))
            else:
                self._copy_back(name, st.path, done, tree=st.action == "copy")
        return done

    def _copy_back(self, name: str, rel: str, done: dict, tree: bool) -> None:
        src = self.snapshot_path(name, rel)
        info = self.store.info(src)
        if info is None:
            return
        if not info.is_dir:
            self._copy_file(src, self.live_path(rel), info.length, done)
            return
        if not tree:
            return        # a directory whose children changed: they have steps of their own
        # a whole directory came back: make it, then every file under it
        self.store.mkdirs(self.live_path(rel))
        for path in self.store.walk_files(src):
            sub = posixpath.relpath(path, self.snapshot_path(name))
            self._copy_file(path, self.live_path(sub), self.store.info(path).length, done)

    def _copy_file(self, src: str, dst: str, length: int, done: dict) -> None:
        def go():
            with self.client.read(src, chunk_size=1 << 20) as chunks:
                self.client.write(dst, data=chunks, overwrite=True,
                                  replication=self.s.effective_replication)
            got = self.store.info(dst)
            if got is None or got.length != length:
                raise HdfsError(f"copy of {src}: {got and got.length} of {length} bytes "
                                f"(Bad response)")
        self.store._do(f"restore {dst}", go)
        done["copied_files"] += 1
        done["copied_bytes"] += length

    def tree(self, base: str, skip: tuple[str, ...]) -> dict[str, int]:
        """Relative path -> length of every file under `base`, except those under `skip`."""
        out = {}
        walked = self.store._do(f"walk {base}",
                                lambda: list(self.client.walk(base, status=True)))
        for (root, _st), _dirs, files in walked:
            for name, st in files:
                rel = posixpath.relpath(posixpath.join(root, name), base)
                if not any(rel == k or rel.startswith(k + "/") for k in skip):
                    out[rel] = int(st["length"])
        return out


class HBaseSnapshots:
    """Snapshots of the tables of `settings.hbase_table_prefix`."""

    def __init__(self, settings: Settings):
        self.s = settings

    def _run(self, *args: str) -> list[dict]:
        done = run_java(self.s, "hbase", LAUNCHER, *args, timeout=1800)
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    def create(self, pairs: list[tuple[str, str]]) -> list[dict]:
        """(table, snapshot) pairs, in order; returns {table, snapshot, rows} per table."""
        return self._run("create", *(f"{t}={n}" for t, n in pairs))

    def restore(self, pairs: list[tuple[str, str]]) -> list[dict]:
        """(snapshot, table) pairs: each table disabled, restored (cloned if it was dropped),
        enabled again; returns {table, snapshot, rows, cloned} per table."""
        return self._run("restore", *(f"{n}={t}" for n, t in pairs))

    def list(self, regex: str) -> list[dict]:
        return self._run("list", regex)

    def delete(self, names: list[str]) -> list[dict]:
        return self._run("delete", *names) if names else []
