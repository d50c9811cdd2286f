"""HIS-MDC link table (hospital side only): which HIS visit became which encrypted visit id,
for which patient and pseudonym, and how far its transfer to the MDC got.

Sync states: ``pending`` (recorded, not yet sent) -> ``sent`` (in a batch, no answer yet) ->
``acked`` (AA: durable at the MDC) or ``rejected`` (AE: the MDC refused this visit; the error is
kept and the visit is not resent until it is recorded again with new content).
An AR (whole batch rejected) puts its visits back to ``pending`` with the error.
A visit the hospital's PHI screen refuses (policy "refuse") is ``rejected`` without being sent,
its error starting with ``HOSPITAL_PHI_SCREEN``; ``release_held`` returns it to ``pending`` once
it passes.

Resume after an interrupt: ``unacknowledged()`` lists pending and sent visits; sent-but-unacked
visits are resent with the same encrypted id, which the MDC stores idempotently (keyed on it), so a
crash between send and ack creates no duplicates, and acked visits are never listed again.

The table links HIS visit ids and national ids to pseudonyms: its database file is created 0600
(before SQLite opens it, so SQLite gives its -wal, -shm and -journal files the same mode) in a
0700 folder.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from hl7_gateway.models import Acknowledgement, MessageAck
from pacs_hdfs.hardening import private_dir, touch_private

STATES = ("pending", "sent", "acked", "rejected")
HELD_PREFIX = "HOSPITAL_PHI_SCREEN"  # last_error of visits the hospital's PHI screen refused
_ACK_TO_STATE = {"AA": "acked", "AE": "rejected", "AR": "pending"}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS visit_link (
    his_visit_id       TEXT PRIMARY KEY,
    encrypted_visit_id TEXT NOT NULL UNIQUE,
    national_id        TEXT NOT NULL,
    pseudonym          TEXT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN {STATES!r}),
    batch_id           TEXT,
    last_error         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visit_link_state ON visit_link (state, his_visit_id);
CREATE INDEX IF NOT EXISTS visit_link_pseudonym ON visit_link (pseudonym);
"""


@dataclass(frozen=True)
class LinkRow:
    his_visit_id: str
    encrypted_visit_id: str
    national_id: str
    pseudonym: str
    state: str
    batch_id: str | None
    last_error: str | None
    created_at: str
    updated_at: str


def _error_text(message: MessageAck) -> str | None:
    return "; ".join(f"{d.code}: {d.text} at {d.location}" for d in message.details) or None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LinkTable:
    """SQLite-backed link table; every method is one transaction."""

    def __init__(self, path: str | Path):
        path = Path(path)
        private_dir(path.parent)
        touch_private(path)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "LinkTable":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, rows: Iterable[tuple]) -> int:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._db.executemany(sql, rows).rowcount

    def _select(self, where: str = "1", params: tuple = ()) -> list[LinkRow]:
        cursor = self._db.execute(
            f"SELECT * FROM visit_link WHERE {where} ORDER BY his_visit_id", params)
        return [LinkRow(*row) for row in cursor]

    # --- writes ------------------------------------------------------------------------------
    def record(self, links: Iterable[tuple[str, str, str, str]]) -> int:
        """Add (his_visit_id, encrypted_visit_id, national_id, pseudonym) links as pending.

        Already known visits are left untouched (state kept), so re-reading an export is safe.
        Returns how many links were new.
        """
        now = _now()
        return self._write(
            "INSERT INTO visit_link (his_visit_id, encrypted_visit_id, national_id, pseudonym,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (his_visit_id) DO NOTHING",
            ((*link, now, now) for link in links))

    def hold(self, held: Iterable[tuple[str, str]]) -> int:
        """(his_visit_id, error): visits the hospital's PHI screen refused; never sent."""
        now = _now()
        return self._write(
            "UPDATE visit_link SET state='rejected', last_error=?, updated_at=?"
            " WHERE his_visit_id=? AND state != 'acked'",
            ((error, now, his_id) for his_id, error in held))

    def release_held(self, his_visit_ids: Iterable[str]) -> int:
        """Visits the PHI screen held earlier and that now pass: back to pending."""
        now = _now()
        return self._write(
            "UPDATE visit_link SET state='pending', last_error=NULL, updated_at=?"
            f" WHERE his_visit_id=? AND state='rejected' AND last_error LIKE '{HELD_PREFIX}%'",
            ((now, his_id) for his_id in his_visit_ids))

    def mark_sent(self, encrypted_visit_ids: Iterable[str], batch_id: str) -> int:
        now = _now()
        return self._write(
            "UPDATE visit_link SET state='sent', batch_id=?, updated_at=?"
            " WHERE encrypted_visit_id=? AND state IN ('pending', 'sent')",
            ((batch_id, now, vid) for vid in encrypted_visit_ids))

    def apply_ack(self, ack: Acknowledgement, batch_id: str | None = None) -> int:
        """Move visits by acknowledgement: AA -> acked, AE -> rejected, AR -> back to pending.

        Per-visit acks target the encrypted visit id; an AR targets the whole batch (``batch_id``,
        default: the id the AR names). Acked visits never move again.
        """
        now = _now()
        if ack.type_code == "AR":
            rejection = ack.messages[0]
            return self._write(
                "UPDATE visit_link SET state='pending', last_error=?, updated_at=?"
                " WHERE batch_id=? AND state='sent'",
                [(_error_text(rejection), now, batch_id or rejection.message_id)])
        return self._write(
            "UPDATE visit_link SET state=?, last_error=?, updated_at=?"
            " WHERE encrypted_visit_id=? AND state != 'acked'",
            ((_ACK_TO_STATE[m.type_code], _error_text(m), now, m.message_id)
             for m in ack.messages))

    # --- reads ------------------------------------------------------------------------------
    def unacknowledged(self, limit: int | None = None) -> list[LinkRow]:
        """Visits to (re)send: pending ones and sent ones whose ack never arrived."""
        rows = self._select("state IN ('pending', 'sent')")
        return rows[:limit] if limit is not None else rows

    def by_state(self, state: str) -> list[LinkRow]:
        return self._select("state=?", (state,))

    def held(self) -> list[LinkRow]:
        """Visits the hospital's PHI screen refused to send."""
        return self._select(f"state='rejected' AND last_error LIKE '{HELD_PREFIX}%'")

    def by_encrypted_id(self, encrypted_visit_id: str) -> LinkRow | None:
        rows = self._select("encrypted_visit_id=?", (encrypted_visit_id,))
        return rows[0] if rows else None

    def by_his_visit_id(self, his_visit_id: str) -> LinkRow | None:
        rows = self._select("his_visit_id=?", (his_visit_id,))
        return rows[0] if rows else None

    def counts(self) -> dict[str, int]:
        found = dict(self._db.execute("SELECT state, COUNT(*) FROM visit_link GROUP BY state"))
        return {state: found.get(state, 0) for state in STATES}
