"""The archive's schema version, and the migrations that bring an older archive up to this code.

The version lives in two places written together: the row `version` of the HBase table
`<prefix>_schema` (v:version, v:code, v:at) and `SCHEMA_VERSION.json` on the HDFS root. An
archive created before versions existed (tables and layout, no version anywhere) is version 1.

`pacs init` reads the version first and, before changing anything, decides (`plan`):
- nothing there                 -> create the current layout and write the current version;
- the current version           -> nothing to migrate (tables and dirs still ensured);
- an older version              -> refuse (`SchemaUpgradeNeeded`), unless `--upgrade`: then each
                                   migration above it runs in turn and the version is written
                                   after each one, so an interrupted upgrade resumes where it
                                   stopped, and running it again changes nothing;
- a newer version than the code -> refuse always (`SchemaTooNew`): old code must not write into
                                   an archive laid out by newer code.
A migration must be idempotent (it may run again after a crash before its version was written).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pacs_hdfs.rows import schema as schema_row
from pacs_hdfs.settings import Settings

LEGACY = 1          # an archive with tables but no version: as `pacs init` made it until now
CURRENT = 2
TABLE = schema_row.TABLE
ROW = schema_row.ROW
HDFS_FILE = "SCHEMA_VERSION.json"
log = logging.getLogger(__name__)


class SchemaError(RuntimeError):
    """The archive's schema does not fit this code; the message says what to do."""


class SchemaUpgradeNeeded(SchemaError):
    pass


class SchemaTooNew(SchemaError):
    pass


@dataclass(frozen=True)
class Migration:
    to: int
    what: str
    run: Callable[[Settings], None]


def _to_2(settings: Settings) -> None:
    """Version 2 adds only the version itself: the `schema` table (made by ensure_tables, which
    runs before the migrations) with its row, and SCHEMA_VERSION.json, both written after this
    step. Row and file layouts are unchanged."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "schema table with a version row, and SCHEMA_VERSION.json on the HDFS root",
              _to_2),
)


@dataclass(frozen=True)
class Found:
    """What the archive says about its version."""
    hbase: int | None          # the version row
    hdfs: int | None           # SCHEMA_VERSION.json
    archive: bool              # anything of an archive there (data tables or the HDFS layout)

    @property
    def version(self) -> int | None:
        """The stored version: the lower of the two when they disagree (an upgrade is
        idempotent, so erring low costs a re-run, erring high could skip a migration); LEGACY
        for an archive without any; None for no archive at all."""
        known = [v for v in (self.hbase, self.hdfs) if v is not None]
        if known:
            return min(known)
        return LEGACY if self.archive else None


@dataclass(frozen=True)
class Plan:
    action: str                 # "create" | "current" | "upgrade"
    stored: int | None
    target: int
    steps: tuple[Migration, ...] = field(default=())


def plan(stored: int | None, upgrade: bool, current: int = CURRENT,
         migrations: tuple[Migration, ...] = MIGRATIONS) -> Plan:
    """What `pacs init [--upgrade]` does with an archive at version `stored` (None: empty)."""
    if stored is None:
        return Plan("create", None, current)
    if stored > current:
        raise SchemaTooNew(f"the archive's schema is version {stored}, newer than this code's "
                           f"({current}): run code of schema version {stored} or later")
    if stored == current:
        return Plan("current", stored, current)
    if not upgrade:
        raise SchemaUpgradeNeeded(f"the archive's schema is version {stored} and this code "
                                  f"needs {current}: back it up (`pacs backup create`), then "
                                  f"run `pacs init --upgrade`")
    steps = tuple(m for m in migrations if stored < m.to <= current)
    if [m.to for m in steps] != list(range(stored + 1, current + 1)):
        raise SchemaError(f"no migration path from version {stored} to {current}")
    return Plan("upgrade", stored, current, steps)


def read(settings: Settings) -> Found:
    from pacs_hdfs import clients
    from pacs_hdfs.schema import TABLES
    hbase, hdfs = clients.hbase(settings), clients.hdfs(settings)
    tables = set(hbase.tables())
    row_version = None
    if TABLE in tables:
        row_version = schema_row.version(hbase.get(TABLE, ROW, columns=[schema_row.VERSION]))
    file_version = None
    if hdfs.exists(HDFS_FILE):
        file_version = int(json.loads(hdfs.read(HDFS_FILE))["version"])
    archive = bool(tables & {t.name for t in TABLES if t.name != TABLE}) or \
        hdfs.exists("dicom")
    return Found(row_version, file_version, archive)


def write(settings: Settings, version: int) -> None:
    """Record `version` in the HBase row and the HDFS file (row first: it is the one read)."""
    from pacs_hdfs import clients
    from pacs_hdfs.backup import code_version
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    code = code_version()
    clients.hbase(settings).put(TABLE, ROW, schema_row.encode(schema_row.Version(version, code,
                                                                                 at)))
    clients.hdfs(settings).write(HDFS_FILE, json.dumps(
        {"version": version, "code": code, "at": at}).encode(), overwrite=True)


def check_at_start(settings: Settings, service: str) -> None:
    """Refuse to start a data-center service on an archive whose schema is not this code's:
    after a code update without `pacs init --upgrade`, a service would otherwise write rows in
    a layout the archive does not have yet (or older code into a newer archive). Exits with
    status 2 and one error line naming the fix. Storage not reachable yet is not a refusal:
    services ride out outages, so they start and the check is logged as skipped."""
    try:
        stored = read(settings).version
    except Exception as e:          # noqa: BLE001 - any client error means "cannot tell now"
        log.warning("%s: schema version not checked, storage not reachable (%s)", service,
                    type(e).__name__)
        return
    try:
        if stored is None:
            raise SchemaError(f"no archive under {settings.hdfs_root}: run `pacs init` first")
        plan(stored, upgrade=False)
    except SchemaError as e:
        log.error("%s refuses to start: %s", service, e)
        raise SystemExit(2) from None
