"""multipart/related parsing as STOW-RS receives it: any chunking gives the same parts, every
malformed body is an error, Content-Type parameters parse with and without quotes."""
from __future__ import annotations

import random

import pytest

from pacs_hdfs.dicom.multipart import MultipartError, MultipartReader, parse_content_type

BOUNDARY = "b0undary-42"
#: part bodies that look like delimiters without being one (RFC 2046: a delimiter is CRLF, '--',
#: the boundary, then '--' or padding and CRLF; a body never contains that)
NASTY = [b"", b"\r\n", b"--b0undary-42", b"x\r\n--b0undary-4", b"\r\n-b0undary-42",
         bytes(range(256)) * 10]


def body(parts: list[bytes], boundary: str = BOUNDARY, *, first_crlf: bool = True,
         headers: bytes = b"Content-Type: application/dicom\r\n", epilogue: bytes = b"") -> bytes:
    """How dicomweb-client builds it (a CRLF before the first delimiter, none after the last)."""
    delim = b"--" + boundary.encode()
    out = b"\r\n" if first_crlf else b""
    for i, part in enumerate(parts):
        out += (b"\r\n" if i else b"") + delim + b"\r\n" + headers + b"\r\n" + part
    return out + b"\r\n" + delim + b"--" + epilogue


def parse(data: bytes, sizes=None, boundary: str = BOUNDARY):
    reader, parts, i = MultipartReader(boundary), [], 0
    rng = random.Random(sizes)
    while i < len(data):
        n = rng.randint(1, 9) if sizes is not None else len(data)
        parts += reader.feed(data[i:i + n])
        i += n
    return parts + reader.close()


@pytest.mark.parametrize("seed", [None, *range(40)])
def test_any_chunking_gives_the_same_parts(seed):
    data = body(NASTY)
    parts = parse(data, seed)
    assert [p.body for p in parts] == NASTY
    assert all(p.media_type == "application/dicom" for p in parts)


def test_no_crlf_before_first_delimiter_preamble_epilogue_padding_and_headerless_parts():
    data = (b"preamble text\r\n--" + BOUNDARY.encode() + b" \t\r\n\r\nA\r\n--" +
            BOUNDARY.encode() + b"\r\ncontent-type: Application/DICOM; transfer-syntax=*\r\n"
            b"X-Other: 1\r\n\r\nB\r\n--" + BOUNDARY.encode() + b"--\r\nepilogue")
    parts = parse(data)
    assert [(p.headers, p.body) for p in parts] == [
        ({}, b"A"), ({"content-type": "Application/DICOM; transfer-syntax=*", "x-other": "1"},
                     b"B")]
    assert parts[0].media_type == "" and parts[1].media_type == "application/dicom"
    assert [p.body for p in parse(body([b"A"], first_crlf=False))] == [b"A"]


@pytest.mark.parametrize("data, message", [
    (b"", "no multipart boundary"),
    (b"just some bytes", "no multipart boundary"),
    (body([b"A"])[:-2], "closing boundary"),                      # '--' of the close missing
    (body([b"A"]).replace(b"\r\n--b0undary-42--", b""), "closing boundary"),
    (body([b"A"], headers=b"Content-Type application/dicom\r\n"), "malformed part header"),
    (b"--" + BOUNDARY.encode() + b"garbage\r\n\r\nA", "malformed boundary line"),
    (b"--" + BOUNDARY.encode() + b"\r\n" + b"X: " + b"y" * 20000, "too long"),
])
def test_malformed_bodies_are_errors(data, message):
    with pytest.raises(MultipartError, match=message):
        parse(data)


def test_invalid_boundaries_are_refused():
    for boundary in ("", "x" * 71, "bad\r\nboundary", "trailing "):
        with pytest.raises(MultipartError):
            MultipartReader(boundary)


def test_parts_are_returned_as_soon_as_they_complete():
    data = body([b"first", b"second"])
    cut = data.index(b"second")
    reader = MultipartReader(BOUNDARY)
    assert [p.body for p in reader.feed(data[:cut])] == [b"first"]
    assert [p.body for p in reader.feed(data[cut:])] == [b"second"]
    assert reader.close() == [] and reader.parts_seen == 2


@pytest.mark.parametrize("header, expected", [
    ('multipart/related; type="application/dicom"; boundary=abc',
     ("multipart/related", {"type": "application/dicom", "boundary": "abc"})),
    ('Multipart/Related;TYPE=application/dicom;boundary="a b;c"',
     ("multipart/related", {"type": "application/dicom", "boundary": "a b;c"})),
    ('multipart/related; boundary="q\\"x"; type="application/dicom" ',
     ("multipart/related", {"boundary": 'q"x', "type": "application/dicom"})),
    ("application/dicom", ("application/dicom", {})),
    (None, ("", {})),
])
def test_content_type_parameters(header, expected):
    assert parse_content_type(header) == expected


def test_malformed_content_type_parameters():
    with pytest.raises(MultipartError):
        parse_content_type("multipart/related; type")
