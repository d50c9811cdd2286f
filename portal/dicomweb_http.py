"""DICOMweb request parsing and answer building, pure: QIDO-RS query parameters, Accept
negotiation, dicom+json of index attributes and multipart/related bodies (PS3.18)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from pacs_hdfs.dicom import index_rows as ix

#: QIDO level -> keys a query may match on (what the index holds at that level)
MATCH_KEYS = {
    "STUDY": ix.STUDY_KEYS + ("ModalitiesInStudy",),
    "SERIES": ix.SERIES_KEYS,
    "IMAGE": ix.ALL_KEYS,
}
#: QIDO level -> attributes every answer carries (when the index has them)
RETURN_KEYS = {
    "STUDY": ix.STUDY_KEYS + ("ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                              "NumberOfStudyRelatedInstances"),
    "SERIES": ix.SERIES_KEYS + ("NumberOfSeriesRelatedInstances",),
    "IMAGE": ix.IMAGE_KEYS,
}
CONTROL_PARAMS = {"limit", "offset", "fuzzymatching", "includefield"}
MAX_LIMIT = 1000
NUMERIC_VRS = {"US", "UL", "SS", "SL", "UV", "SV"}
DECIMAL_VRS = {"IS", "DS", "FL", "FD"}
TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")


class BadRequest(ValueError):
    """A malformed DICOMweb request (answered 400)."""


@dataclass
class Qido:
    keys: dict[str, str] = field(default_factory=dict)   # keyword -> C-FIND query text
    limit: int = MAX_LIMIT
    offset: int = 0
    include: set[str] = field(default_factory=set)       # extra keywords; {"all"} for all


def keyword_of(name: str) -> str:
    """A QIDO attribute given as keyword or 8-hex tag -> keyword; BadRequest if unknown."""
    if TAG_RE.match(name):
        kw = keyword_for_tag(int(name, 16))
    else:
        kw = name if tag_for_keyword(name) is not None else ""
    if not kw:
        raise BadRequest(f"unknown attribute {name!r}")
    return kw


def _count(name: str, text: str, default: int) -> int:
    if text == "":
        return default
    if not text.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(text)


def parse_qido(params: list[tuple[str, str]], level: str) -> Qido:
    """Query parameters (repeats allowed) -> matching keys, paging and includefield."""
    q = Qido()
    for name, value in params:
        if name == "limit":
            q.limit = min(_count(name, value, MAX_LIMIT), MAX_LIMIT)
        elif name == "offset":
            q.offset = _count(name, value, 0)
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise BadRequest("fuzzymatching must be true or false")
        elif name == "includefield":
            for item in filter(None, (v.strip() for v in value.split(","))):
                q.include.add("all" if item == "all" else keyword_of(item))
        else:
            kw = keyword_of(name)
            if kw not in MATCH_KEYS[level]:
                raise BadRequest(f"{kw} is not a matching key at {level.lower()} level; "
                                 f"supported: {', '.join(MATCH_KEYS[level])}")
            if "\x00" in value or len(value) > 1024:
                raise BadRequest(f"bad value for {kw}")
            text = value.replace(",", "\\") if dictionary_VR(kw) == "UI" else value
            q.keys[kw] = text
    return q


def _json_value(vr: str, text: str):
    values = text.split("\\")
    if vr == "PN":
        return [{"Alphabetic": v} for v in values]
    if vr in NUMERIC_VRS:
        return [int(v) for v in values]
    if vr in DECIMAL_VRS:
        return [float(v) if ("." in v or "e" in v.lower()) else int(v) for v in values]
    return values


def dicom_json(attrs: dict[str, str], keywords) -> dict:
    """dicom+json object of the `keywords` present in `attrs` (index text values)."""
    out = {}
    for kw in keywords:
        text = attrs.get(kw, "")
        tag = tag_for_keyword(kw)
        if tag is None:
            continue
        vr = dictionary_VR(kw)
        try:
            value = _json_value(vr, text) if text else None
        except ValueError:
            value = [text]
            vr = "UN" if vr in NUMERIC_VRS else vr
        out[f"{tag:08X}"] = {"vr": vr, **({"Value": value} if value else {})}
    return dict(sorted(out.items()))


def answer_keys(level: str, qido: Qido, attrs: dict[str, str]) -> list[str]:
    """Keywords of one QIDO answer: the level's attributes, the queried ones, includefield."""
    keys = list(RETURN_KEYS[level]) + list(qido.keys)
    keys += sorted(attrs) if "all" in qido.include else sorted(qido.include)
    return list(dict.fromkeys(keys))


# --- content negotiation --------------------------------------------------------------------

@dataclass(frozen=True)
class MediaRange:
    media: str
    params: dict[str, str]


def parse_accept(header: str | None) -> list[MediaRange]:
    """Accept header -> media ranges in the order given ("*/*" when absent)."""
    out = []
    for part in (header or "*/*").split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        params = {}
        for b in bits[1:]:
            k, _, v = b.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        out.append(MediaRange(bits[0].lower(), params))
    return out or [MediaRange("*/*", {})]


def _fits(offered: str, wanted: str) -> bool:
    if wanted in ("*/*", offered):
        return True
    return wanted.endswith("/*") and offered.split("/")[0] == wanted[:-2]


def accepts_multipart(header: str | None, part_type: str) -> bool:
    """Does the client take multipart/related with parts of `part_type`?"""
    for r in parse_accept(header):
        if r.media == "multipart/related" and _fits(part_type, r.params.get("type", part_type)):
            return True
        if r.media in ("*/*", "multipart/*"):
            return True
    return False


def choose(header: str | None, offered: tuple[str, ...]) -> str | None:
    """The first of `offered` the Accept header allows (respecting q=0), else None."""
    ranges = [r for r in parse_accept(header) if r.params.get("q", "1") not in ("0", "0.0")]
    for r in ranges:
        for media in offered:
            if _fits(media, r.media):
                return media
    return None


def parse_frames(text: str) -> list[int]:
    """'1,3,5' -> [1, 3, 5] (1-based frame numbers)."""
    try:
        frames = [int(x) for x in text.split(",")]
    except ValueError:
        raise BadRequest("frame numbers are positive integers separated by commas") from None
    if not frames or any(f < 1 for f in frames) or len(frames) > 10_000:
        raise BadRequest("frame numbers are positive integers separated by commas")
    return frames


def parse_window(text: str | None) -> tuple[float, float] | None:
    """`window=center,width[,linear]` -> (center, width); BadRequest if malformed."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].lower() != "linear"):
        raise BadRequest("window is center,width[,linear]")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise BadRequest("window center and width must be numbers") from None
    if not width >= 1 or center != center or abs(center) > 1e9 or width > 1e9:
        raise BadRequest("window width must be at least 1")
    return center, width


def multipart_part(boundary: str, content_type: str, body: bytes) -> bytes:
    return (f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body + b"\r\n"


def multipart_end(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()
