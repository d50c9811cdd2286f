"""The one logging setup of every service: JSON lines, rotated files, no PHI.

Every long-running process (`pacs edge`, `pacs scp`, `pacs gateway`, `pacs portal`, the job
runner, the watchdog) calls `setup(service, path)` once. A log pipeline (Loki, Elastic, journald
with a JSON parser) then reads one object per line:

    {"ts": "2026-12-03T17:04:05.123Z", "level": "INFO", "service": "scp",
     "logger": "pacs_hdfs.dicom.runner", "event": "association accepted (2 ...)",
     "assoc": "1f3a-7", "ae": "CT1", "peer": "10.0.0.5:40112", "op": "C-STORE"}

Context fields come from filters: `scp_logging.AssociationFilter` adds `assoc`/`ae`/`peer`/`op`
while a DICOM association is served; `RequestIdMiddleware` adds `request` (the caller's
`X-Request-ID`, else a fresh one, echoed in the response) while an HTTP request is served.

Which loggers: the handlers hang on the root logger at INFO; our packages log at INFO, every
other library only from WARNING (the root logger's level), so a chatty client library (hdfs,
py4j) cannot flood the file. pynetdicom stays at WARNING: its debug dumps print dataset values.

No PHI: our modules log de-identified UIDs, AE titles, addresses, counts and exception types only;
`RedactFilter` cuts third-party tracebacks to the exception type, since an exception message may
quote a data value. The PHI-marker tests scan these files.

Rotation: `RotatingFileHandler` (`log_max_bytes`, `log_backups` in Settings). When the supervisor
already redirects the process's stderr into the same file, lines go to the file only, once.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
import uuid
from contextvars import ContextVar
from pathlib import Path

#: our packages, logged from INFO; everything else from WARNING
OUR_PACKAGES = ("pacs", "pacs_hdfs", "deid", "hl7_gateway", "portal", "analytics_jobs",
                "recon_mapreduce", "deploy")
#: context fields a filter may set on a record, copied into the JSON object when present
CONTEXT_FIELDS = ("assoc", "ae", "peer", "op", "request", "job")

request_id: ContextVar[str] = ContextVar("pacs_request_id", default="")


class JsonLines(logging.Formatter):
    """One JSON object per record: ts (UTC, ms), level, service, logger, event, context."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc = {"ts": f"{ts}.{int(record.msecs):03d}Z", "level": record.levelname,
               "service": self.service, "logger": record.name, "event": record.getMessage()}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                doc[name] = value
        if record.exc_info:
            doc["error"] = record.exc_info[0].__name__ if record.exc_info[0] else "?"
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class RequestFilter(logging.Filter):
    """Adds `request`: the id of the HTTP request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request", None):
            record.request = request_id.get()
        return True


class RedactFilter(logging.Filter):
    """Third-party tracebacks reduced to their exception type (messages may quote values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in OUR_PACKAGES:
            return True
        msg = record.getMessage()
        if "Traceback" in msg:
            last = msg.strip().splitlines()[-1]
            record.msg, record.args = f"traceback of {last.split(':', 1)[0].strip()} (redacted)", ()
        if record.exc_info:
            record.msg = f"{record.getMessage()} ({record.exc_info[0].__name__}, redacted)"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def same_file(stream, path: Path) -> bool:
    """Is `stream` (e.g. stderr) writing into `path` already?"""
    try:
        return os.path.samestat(os.fstat(stream.fileno()), os.stat(path))
    except (OSError, ValueError, AttributeError):
        return False


def _ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_pacs_logs", False)


def setup(service: str, path: Path | None = None, *, stream=None,
          filters: tuple[logging.Filter, ...] = (), max_bytes: int | None = None,
          backups: int | None = None) -> list[logging.Handler]:
    """JSON lines for `service` into `path` (rotated) and `stream` (default stderr; skipped when
    it is the same file; `path=None` = the stream only). Idempotent: calling it again replaces
    the handlers it added. `filters` add context fields (e.g. the DICOM association)."""
    if max_bytes is None or backups is None:
        from pacs_hdfs.settings import get_settings
        s = get_settings()
        max_bytes = s.log_max_bytes if max_bytes is None else max_bytes
        backups = s.log_backups if backups is None else backups
    stream = sys.stderr if stream is None else stream
    handlers: list[logging.Handler] = []
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"))
    if path is None or not same_file(stream, path):
        handlers.append(logging.StreamHandler(stream))
    formatter = JsonLines(service)
    for h in handlers:
        h.setLevel(logging.INFO)
        h.setFormatter(formatter)
        for f in (RedactFilter(), RequestFilter(), *filters):
            h.addFilter(f)
        h._pacs_logs = True
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call, or a stray basicConfig's
        root.removeHandler(old)
        if _ours(old):
            old.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(logging.WARNING)
    for name in OUR_PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = True
        for old in [h for h in logger.handlers if _ours(h)]:
            logger.removeHandler(old)
    return handlers


def read(path: Path) -> list[dict]:
    """The records of a JSON-lines log (rotated backups not included); lines that are not JSON
    (a crash's stderr) come back as {"event": line, "raw": True}."""
    records = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append({"event": line, "raw": True})
    return records


class RequestIdMiddleware:
    """ASGI middleware: each HTTP request gets an id (the caller's `X-Request-ID` when it is a
    short token, else a fresh one), set for log lines and echoed in the response header."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() \
            else uuid.uuid4().hex[:16]
        token = request_id.set(rid)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"x-request-id", rid.encode())]}
            await send(message)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
