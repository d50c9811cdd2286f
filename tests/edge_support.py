"""Helpers for the edge tests: small synthetic DICOM, an edge receiver in a temp dir, and
`StowStub`, a real HTTPS (mutual TLS) STOW-RS server whose behaviour each test scripts.

The stub keeps what it stored by SOP Instance UID (a re-send with identical bytes is answered
as stored and not kept twice, other bytes get 0xC001), and follows a script of modes, one per
request: "ok", "503", "refuse" (every instance 0xC000, HTTP 409), "partial:<uid>=<reason>,..."
(those fail, the rest are stored), "die" (store everything, then drop the connection without an
answer), "die-early" (drop the connection before reading the body), "413>N" (413 whenever more than
N parts, for the rest of the test), "slow:<seconds>" (store, then wait before answering). After the script it answers "ok".
"""
from __future__ import annotations

import hashlib
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

from pydicom import dcmread

from deid.edge.bench import encoded_ct
from deid.edge.layout import EdgePaths
from deid.edge.receive import Receiver
from deid.edge.spool import Spool
from deid.vault import Vault, generate_master_key


def edge_in(tmp: Path) -> SimpleNamespace:
    """A receiver with its own vault and spool under `tmp`."""
    vault = Vault.open(tmp / "vault.bin", master_key=generate_master_key())
    paths = EdgePaths(tmp / "edge")
    spool = Spool(paths)
    return SimpleNamespace(vault=vault, keys=vault.deid_keys(), paths=paths, spool=spool,
                           receiver=Receiver(vault.deid_keys(), vault, spool))


def small_ct(count: int, size: int = 16) -> list[bytes]:
    return encoded_ct(count, size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spool_contents(paths: EdgePaths) -> dict[str, str]:
    """{SOP UID: sha256} of every spooled object."""
    return {f.stem: sha(f.read_bytes()) for f in paths.spool.glob("*.dcm")}


def _parts(content_type: str, body: bytes) -> list[bytes]:
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    out = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        out.append(data[:-2] if data.endswith(b"\r\n") else data)
    return out


def _item(cls: str, uid: str, reason: int | None = None) -> dict:
    item = {"00081150": {"vr": "UI", "Value": [cls]}, "00081155": {"vr": "UI", "Value": [uid]}}
    if reason is not None:
        item["00081197"] = {"vr": "US", "Value": [reason]}
    return item


class StowStub:
    def __init__(self, certs, port: int = 0):
        self.certs = certs
        self.script: list[str] = []
        self.stored: dict[str, bytes] = {}
        self.requests: list[dict] = []
        self.connections: list = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                stub.connections.append(self.connection)

            def do_POST(self):
                stub._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certs.server_cert, certs.server_key)
        ctx.load_verify_locations(certs.ca_cert)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        """Down for real: also the keep-alive connections a client still holds."""
        self.server.shutdown()
        self.server.server_close()
        for conn in self.connections:
            try:
                conn.shutdown(2)
                conn.close()
            except OSError:
                pass

    def _next_mode(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        mode = self._next_mode()
        if mode == "die-early":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        parts = _parts(h.headers.get("Content-Type", ""), body)
        record = {"mode": mode, "parts": len(parts), "path": h.path,
                  "content_type": h.headers.get("Content-Type"), "accept": h.headers.get("Accept")}
        self.requests.append(record)
        if mode == "503":
            return self._answer(h, 503, {"detail": "storage unavailable"})
        if mode.startswith("413>"):
            self.script.insert(0, mode)  # stays in force for the whole test
            if len(parts) > int(mode[4:]):
                return self._answer(h, 413, {"detail": "too large"})
        fail = {}
        if mode.startswith("partial:"):
            for pair in mode[8:].split(","):
                uid, _, reason = pair.partition("=")
                fail[uid] = int(reason, 16)
        referenced, failed = [], []
        for data in parts:
            ds = dcmread(BytesIO(data), stop_before_pixels=True)
            uid, cls = str(ds.SOPInstanceUID), str(ds.SOPClassUID)
            if mode == "refuse":
                failed.append(_item(cls, uid, 0xC000))
            elif uid in fail:
                failed.append(_item(cls, uid, fail[uid]))
            else:
                with self.lock:
                    known = self.stored.setdefault(uid, data)
                if known == data:
                    referenced.append(_item(cls, uid))
                else:
                    failed.append(_item(cls, uid, 0xC001))
        if mode.startswith("slow:"):  # stored; the answer comes late (time to kill the edge)
            time.sleep(float(mode[5:]))
        if mode == "die":  # stored, but the answer never arrives
            h.close_connection = True
            h.connection.shutdown(2)
            return
        doc = {}
        if referenced:
            doc["00081199"] = {"vr": "SQ", "Value": referenced}
        if failed:
            doc["00081198"] = {"vr": "SQ", "Value": failed}
        status = 200 if not failed else (202 if referenced else 409)
        self._answer(h, status, doc)

    @staticmethod
    def _answer(h, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/dicom+json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
