"""What `pacs fsck --repair` changes, from what the check found: the plans are pure functions,
the `apply_*` functions do the HBase/HDFS writes (driver side; compaction runs on executors).

Rules, in the order the job applies them:

1. **A row whose bytes are bad or missing** is pointed at an intact copy of the same bytes (same
   sha256 and length) found in any batch file's manifest, preferring (`SOURCE_PREFERENCE`) a
   segment in the row's own series directory that nothing points to, then any segment there,
   then a segment in another directory, whose bytes are then *copied* into a new batch file of
   the row's directory (compaction of that other series would otherwise delete them under the
   row). Without such a copy the row is reported unrepairable (never deleted: it is evidence).
2. **An unfinished commit** whose bytes verify (now) and whose file is older than the grace
   period is completed as `commit.py` would have: series/study/subject/search rows
   (`index_rows.parent_rows`, not for a quarantined object, which instead gets its `quarantine`
   row back if it lost it), then the `sop` row, last, as the commit marker. A `sop` row that
   points at another instance is a conflict and is only reported.
3. **Orphan files and segments** are reclaimed by `compaction.compact_series` on each affected
   series (it deletes files nothing points into once older than the grace period and rewrites
   partly referenced ones).
4. **Counters** that differ from the recount are set to it (a put of the 8-byte value), except in
   series with a file younger than the grace period (a commit may still be adding to them).
"""
from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass

from pacs_hdfs.containers import ContainerWriter, Location
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom.fsck_checks import (
    COMMITTED,
    SOP_ELSEWHERE,
    CounterMismatch,
    RowProblem,
    Segment,
    Uncommitted,
    commit_state,
    display_key,
    encode_counter,
    sop_of,
)
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance, quarantine, sop

#: where a replacement copy may come from, best first: (name, test(same_dir, unreferenced))
SOURCE_PREFERENCE = (
    ("same directory, unreferenced segment", lambda same_dir, orphan: same_dir and orphan),
    ("same directory, referenced segment", lambda same_dir, orphan: same_dir),
    ("another directory (bytes copied)", lambda same_dir, orphan: True),
)


def row_directory(key: bytes, containers_root: str) -> str:
    """The series directory (absolute) where a row's bytes belong."""
    study, series, _ = key.decode().split("\x00")
    return f"{containers_root.rstrip('/')}/{study}/{series}"


def _dir(path: str) -> str:
    return path.rsplit("/", 1)[0]


@dataclass(frozen=True)
class Repoint:
    problem: RowProblem
    source: Segment
    rule: str

    @property
    def copy(self) -> bool:
        return self.rule == SOURCE_PREFERENCE[2][0]


def plan_repoints(problems: list[RowProblem], sources: list[Segment],
                  unreferenced: set[tuple[str, int, int]], containers_root: str
                  ) -> tuple[list[Repoint], list[dict]]:
    """A source for each bad row (see rule 1), and the rows without one (as report items).

    `sources` are intact segments (any file); `unreferenced` the (path, offset, length) of the
    segments no row points to."""
    by_content: dict[tuple[str, int], list[Segment]] = defaultdict(list)
    for s in sources:
        by_content[(s.sha256, s.length)].append(s)
    plans, unrepairable = [], []
    for p in problems:
        if sop_of(p.key) is None:
            unrepairable.append({**p.as_dict(), "reason": "malformed row key"})
            continue
        home = row_directory(p.key, containers_root)
        candidates = [s for s in by_content.get((p.sha256, p.length), [])
                      if (s.path, s.offset) != (p.path, p.offset)]
        chosen = None
        for rule, fits in SOURCE_PREFERENCE:
            fitting = sorted((s for s in candidates
                              if fits(_dir(s.path) == home,
                                      (s.path, s.offset, s.length) in unreferenced)),
                             key=lambda s: (s.path, s.offset))
            if fitting:
                chosen = Repoint(p, fitting[0], rule)
                break
        if chosen:
            plans.append(chosen)
        else:
            why = ("no intact copy with this sha256 and length" if p.sha256 else
                   "the row has no sha256")
            if p.manifest_sha256 and p.manifest_sha256 == p.actual_sha256:
                why += ("; the file's own manifest entry at this span matches its bytes, so the "
                        "row's sha256 (not the bytes) may be what changed")
            unrepairable.append({**p.as_dict(), "reason": why})
    return plans, unrepairable


def apply_repoints(hbase, hdfs, writer: ContainerWriter, plans: list[Repoint],
                   containers_root: str) -> dict:
    """Point each planned row at its source (copying bytes where the plan says so); a row that
    moved since the check (compaction, another repair) is left alone."""
    current = _locations(hbase, [p.problem.key for p in plans])
    done, moved, failed = [], 0, []
    puts: list[tuple[bytes, dict]] = []
    copies: dict[str, list[tuple[Repoint, bytes]]] = defaultdict(list)
    for plan in plans:
        p = plan.problem
        if current.get(p.key) != (p.path, p.offset, p.length, p.sha256):
            moved += 1
            continue
        if not plan.copy:
            loc = Location(plan.source.path, plan.source.offset, plan.source.length, p.sha256)
            puts.append((p.key, instance.encode_location(loc)))
            done.append(_repoint_item(plan, loc))
            continue
        try:
            data = hdfs.read(plan.source.path, plan.source.offset, plan.source.length)
        except StorageError as e:
            failed.append({"key": display_key(p.key), "reason": f"source unreadable: {e}"})
            continue
        if hashlib.sha256(data).hexdigest() != p.sha256:
            failed.append({"key": display_key(p.key), "reason": "source changed since the check"})
            continue
        copies[row_directory(p.key, containers_root)].append((plan, data))
    for directory, items in copies.items():
        try:
            locs = writer.write(directory, [(pl.problem.key.decode(), d) for pl, d in items])
        except StorageError as e:
            failed += [{"key": display_key(pl.problem.key), "reason": str(e)} for pl, _ in items]
            continue
        for (plan, _), loc in zip(items, locs):
            puts.append((plan.problem.key, instance.encode_location(loc)))
            done.append(_repoint_item(plan, loc))
    if puts:
        hbase.put_many("instance", puts)
    return {"repointed": done, "moved_meanwhile": moved, "failed": failed,
            "keys": {key for key, _ in puts}}


def _repoint_item(plan: Repoint, loc: Location) -> dict:
    p = plan.problem
    return {"key": display_key(p.key), "problem": p.kind, "rule": plan.rule,
            "from": {"path": p.path, "offset": p.offset},
            "to": {"path": loc.path, "offset": loc.offset}}


def _locations(hbase, keys: list[bytes]) -> dict[bytes, tuple]:
    out = {}
    for i in range(0, len(keys), 1000):
        rows = hbase.get_many("instance", keys[i:i + 1000], columns=list(instance.LOCATION))
        for k, r in rows.items():
            path = r.get(instance.PATH)
            out[k] = (path.decode() if path else None, _int(r.get(instance.OFFSET)),
                      _int(r.get(instance.LENGTH)), r.get(instance.SHA256, b"").decode())
    return out


def _int(raw: bytes | None) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return -1


def completable(uncommitted: list[Uncommitted], repointed: set[bytes]) -> tuple[
        list[Uncommitted], list[dict]]:
    """Unfinished commits that may be completed now (rule 2), and the others as report items
    (young ones are pending, not listed)."""
    ok, other = [], []
    for u in uncommitted:
        if u.young:
            continue
        if u.commit == SOP_ELSEWHERE:
            other.append({**u.as_dict(), "why": "its sop row points at another instance"})
        elif not (u.bytes_ok or u.key in repointed):
            other.append({**u.as_dict(), "why": "its bytes do not verify"})
        else:
            ok.append(u)
    return ok, other


def complete_commits(hbase, items: list[Uncommitted]) -> dict:
    """Finish these commits (rule 2): parent rows or quarantine row, then the sop rows."""
    keys = [u.key for u in items]
    rows, sops = {}, {}
    for i in range(0, len(keys), 1000):
        chunk = keys[i:i + 1000]
        rows.update(hbase.get_many("instance", chunk))
        sops.update(hbase.get_many("sop", [sop.key(sop_of(k)) for k in chunk]))
    parents: dict[str, dict[bytes, dict]] = defaultdict(dict)
    held, completed, skipped = [], [], []
    for key in keys:
        row = rows.get(key)
        state = commit_state(key, sops.get(sop.key(sop_of(key))))
        if not row:
            skipped.append({"key": display_key(key), "why": "instance row gone"})
            continue
        if state == COMMITTED:
            continue                       # finished meanwhile (a retried commit)
        if state == SOP_ELSEWHERE:
            skipped.append({"key": display_key(key), "why": "sop row points elsewhere"})
            continue
        if instance.is_quarantined(row):
            held.append((key, row))
        else:
            for table, (pk, cols) in ix.parent_rows(ix.decode_attributes(row)).items():
                parents[table].setdefault(pk, {}).update(cols)
        completed.append(key)
    for table, trows in parents.items():
        hbase.put_many(table, trows.items())
    if held:
        have = hbase.get_many("quarantine", [quarantine.key(sop_of(k)) for k, _ in held])
        missing = [(quarantine.key(sop_of(k)), quarantine.encode(quarantine.Held(
                       r[instance.QUARANTINE].decode(), k, int(time.time()))))
                   for k, r in held if quarantine.key(sop_of(k)) not in have]
        if missing:
            hbase.put_many("quarantine", missing)
    if completed:
        hbase.put_many("sop", [(sop.key(sop_of(k)), sop.encode(k)) for k in completed])
    return {"completed": [display_key(k) for k in completed], "skipped": skipped}


def plan_counter_puts(mismatches: list[CounterMismatch]
                      ) -> dict[tuple[str, bytes], dict[bytes, bytes]]:
    """(table, row key) -> the counter cells to put (rule 4)."""
    puts: dict[tuple[str, bytes], dict[bytes, bytes]] = defaultdict(dict)
    for m in mismatches:
        puts[(m.table, m.key)][m.column.encode()] = encode_counter(m.expected)
    return dict(puts)


def apply_counter_puts(hbase, puts: dict[tuple[str, bytes], dict[bytes, bytes]]) -> int:
    by_table: dict[str, list] = defaultdict(list)
    for (table, key), cols in puts.items():
        by_table[table].append((key, cols))
    for table, rows in by_table.items():
        hbase.put_many(table, rows)
    return sum(len(c) for c in puts.values())
