"""multipart/related request bodies (RFC 2046 / RFC 2387, as DICOMweb STOW-RS sends them),
parsed while they stream in.

Pure: no I/O. `MultipartReader.feed(chunk)` returns the parts completed by that chunk, so a
request body never has to be held twice (the reader keeps at most one delimiter's length of
unparsed bytes besides the part being assembled); `close()` checks that the close delimiter came.
Anything that is not a well-formed body - no opening delimiter, a header line without a colon,
bytes after a delimiter that are neither ``--`` nor a line end, a body that stops before the
close delimiter - raises `MultipartError` (STOW-RS answers 400).

What the wire format allows and this reader accepts: a preamble before the first delimiter (and
no CRLF before it when it opens the body), transport padding (spaces, tabs) after a delimiter, a
part without headers, an epilogue after the close delimiter. Header names are case-insensitive.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CRLF = b"\r\n"
#: RFC 2046: a boundary is 1-70 characters of this set (and does not end with a space).
BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]\Z")
#: A part's header block may not grow past this (a body without the blank line is malformed).
MAX_HEADER_BYTES = 16 * 1024
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
#: one '; name=value' parameter: a quoted string, or a bare value (a token; '/' tolerated, as
#: clients send type=application/dicom unquoted)
_PARAM = re.compile(rf'\s*;\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s"]+)')


class MultipartError(ValueError):
    """The body (or its Content-Type) is not well-formed multipart."""


def parse_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """'multipart/related; type="application/dicom"; boundary=x' -> (media type in lower case,
    {parameter name in lower case: unquoted value}). Raises MultipartError when unparseable."""
    if not header:
        return "", {}
    media, _, rest = header.partition(";")
    params: dict[str, str] = {}
    rest = ";" + rest if rest else ""
    pos = 0
    while pos < len(rest.rstrip()):
        m = _PARAM.match(rest, pos)
        if m is None:
            raise MultipartError("malformed Content-Type parameters")
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[m.group(1).lower()] = value
        pos = m.end()
    return media.strip().lower(), params


@dataclass(frozen=True)
class Part:
    """One body part: its headers (names in lower case) and its bytes."""

    headers: dict[str, str]
    body: bytes

    @property
    def media_type(self) -> str:
        """The part's media type in lower case, '' when it has no Content-Type."""
        return parse_content_type(self.headers.get("content-type"))[0]


class MultipartReader:
    """Incremental parser of one multipart body with a known boundary."""

    def __init__(self, boundary: str, max_header_bytes: int = MAX_HEADER_BYTES):
        if not BOUNDARY.match(boundary):
            raise MultipartError("invalid multipart boundary")
        self.max_header_bytes = max_header_bytes
        self.parts_seen = 0
        self._dash = b"--" + boundary.encode("ascii")
        self._delimiter = CRLF + self._dash
        self._buf = bytearray()
        self._state = "preamble"
        self._part_headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        #: state -> handler; a handler consumes what it can and says whether to go on
        self._handlers = {"preamble": self._preamble, "boundary-line": self._boundary_line,
                          "headers": self._headers, "body": self._body,
                          "epilogue": self._epilogue}

    def feed(self, chunk: bytes) -> list[Part]:
        """Parse ``chunk``; the parts it completed, in order."""
        self._buf += chunk
        done: list[Part] = []
        while self._handlers[self._state](done):
            pass
        return done

    def close(self) -> list[Part]:
        """End of body: the last parts, or MultipartError when the close delimiter is missing."""
        done = self.feed(b"")
        if self._state == "preamble":
            raise MultipartError("no multipart boundary in body")
        if self._state != "epilogue":
            raise MultipartError("body ends before the closing boundary")
        return done

    # --- states -------------------------------------------------------------------------------
    def _skip_to(self, needle: bytes) -> int:
        """Index of ``needle`` in the buffer, or -1 after dropping what cannot start it."""
        at = self._buf.find(needle)
        if at < 0:
            keep = len(needle) - 1  # the needle may straddle two chunks
            if len(self._buf) > keep:
                excess = len(self._buf) - keep
                if self._state == "body":
                    self._chunks.append(bytes(self._buf[:excess]))
                del self._buf[:excess]
        return at

    def _preamble(self, done) -> bool:
        if self._buf.startswith(self._dash):  # the body opens with the first delimiter
            del self._buf[:len(self._dash)]
        elif len(self._buf) < len(self._dash) and self._dash.startswith(bytes(self._buf)):
            return False
        else:
            at = self._skip_to(self._delimiter)
            if at < 0:
                return False
            del self._buf[:at + len(self._delimiter)]
        self._state = "boundary-line"
        return True

    def _boundary_line(self, done) -> bool:
        """After a delimiter: '--' closes the body; else optional padding and a line end."""
        if len(self._buf) < 2:
            return False
        if self._buf.startswith(b"--"):
            self._state = "epilogue"
            return True
        rest = self._buf.lstrip(b" \t")
        if len(rest) < 2:
            if len(self._buf) > 1024:
                raise MultipartError("malformed boundary line")
            return False
        if not rest.startswith(CRLF):
            raise MultipartError("malformed boundary line")
        del self._buf[:len(self._buf) - len(rest) + 2]
        self._state = "headers"
        return True

    def _headers(self, done) -> bool:
        if self._buf.startswith(CRLF):  # a part without headers
            end, block = 0, b""
        else:
            end = self._buf.find(CRLF + CRLF)
            if end < 0 or end > self.max_header_bytes:
                if end > self.max_header_bytes or len(self._buf) > self.max_header_bytes:
                    raise MultipartError("part headers too long")
                return False
            block = bytes(self._buf[:end])
            end += 2
        headers: dict[str, str] = {}
        for line in filter(None, block.split(CRLF)):
            name, colon, value = line.partition(b":")
            if not colon or not name.strip():
                raise MultipartError("malformed part header")
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
        del self._buf[:end + 2]
        self._part_headers, self._chunks, self._state = headers, [], "body"
        return True

    def _body(self, done) -> bool:
        at = self._skip_to(self._delimiter)
        if at < 0:
            return False
        self._chunks.append(bytes(self._buf[:at]))
        del self._buf[:at + len(self._delimiter)]
        done.append(Part(self._part_headers, b"".join(self._chunks)))
        self._chunks = []
        self.parts_seen += 1
        self._state = "boundary-line"
        return True

    def _epilogue(self, done) -> bool:
        self._buf.clear()
        return False


def part_bytes(boundary: str, content_type: str, body: bytes) -> bytes:
    """One part of a multipart/related body, delimiter first (the writing side)."""
    return (f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body + CRLF


def close_bytes(boundary: str) -> bytes:
    """The close delimiter that ends a multipart body."""
    return f"--{boundary}--\r\n".encode()
