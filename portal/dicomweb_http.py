"""DICOMweb request parsing and answer building, pure: QIDO-RS query parameters, Accept
negotiation (media types and transfer syntaxes), dicom+json of index attributes, multipart/related
bodies (PS3.18), and the HMAC-signed read tokens a standard viewer launched from the portal
carries."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
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
    fuzzy: bool = False          # fuzzymatching=true was asked: answered literally, with a Warning


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


#: top-level /series (no study in the path) also matches on study attributes (PS3.18 §10.6.1)
TOP_LEVEL_EXTRA = {"SERIES": ix.STUDY_KEYS, "STUDY": (), "IMAGE": ()}


def parse_qido(params: list[tuple[str, str]], level: str, top_level: bool = False) -> Qido:
    """Query parameters (repeats allowed) -> matching keys, paging and includefield."""
    allowed = MATCH_KEYS[level] + (TOP_LEVEL_EXTRA[level] if top_level else ())
    q = Qido()
    for name, value in params:
        if name == "limit":
            q.limit = min(_count(name, value, MAX_LIMIT), MAX_LIMIT)
        elif name == "offset":
            q.offset = _count(name, value, 0)
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise BadRequest("fuzzymatching must be true or false")
            q.fuzzy = value == "true"
        elif name == "includefield":
            for item in filter(None, (v.strip() for v in value.split(","))):
                q.include.add("all" if item == "all" else keyword_of(item))
        else:
            kw = keyword_of(name)
            if kw not in allowed:
                raise BadRequest(f"{kw} is not a matching key at {level.lower()} level; "
                                 f"supported: {', '.join(dict.fromkeys(allowed))}")
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


# --- transfer syntaxes (PS3.18 §8.7.3: Accept media types and their transfer-syntax) -------

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
ANY_SYNTAX = "*"
#: uncompressed syntaxes whose frames are plain little-endian bytes (passed through as stored)
NATIVE_LE = (EXPLICIT_LE, IMPLICIT_LE, "1.2.840.10008.1.2.1.99")
#: compressed transfer syntax -> the media type of its frames (PS3.18 Table 8.7.3-5)
FRAME_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx", "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc", "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc", "1.2.840.10008.1.2.5": "image/dicom-rle",
}
#: media type -> its default transfer syntax when the Accept range names none
DEFAULT_SYNTAX = {"application/dicom": EXPLICIT_LE, "application/octet-stream": EXPLICIT_LE,
                  "image/jpeg": "1.2.840.10008.1.2.4.70", "image/jls": "1.2.840.10008.1.2.4.80",
                  "image/jp2": "1.2.840.10008.1.2.4.90", "image/jpx": "1.2.840.10008.1.2.4.92",
                  "image/jphc": "1.2.840.10008.1.2.4.201",
                  "image/dicom-rle": "1.2.840.10008.1.2.5"}


@dataclass(frozen=True)
class Offer:
    """What a multipart answer may carry: parts of `media` in `syntax` ("*" = as stored)."""
    media: str
    syntax: str


def offers(header: str | None, part_types: tuple[str, ...]) -> list[Offer]:
    """The (part media type, transfer syntax) pairs the client accepts in a multipart/related
    answer, in its order. A range without `transfer-syntax` means the media type's default
    (PS3.18 §8.7.3.5: uncompressed Explicit VR Little Endian for application/dicom and
    application/octet-stream); `*/*`, `multipart/*` and a `multipart/related` without `type`
    mean the first of `part_types` in its default syntax. q=0 ranges are refused ones."""
    out = []
    for r in parse_accept(header):
        if r.params.get("q", "1") in ("0", "0.0", "0.00", "0.000"):
            continue
        if r.media in ("*/*", "multipart/*") or (r.media == "multipart/related"
                                                 and "type" not in r.params):
            media = part_types[0]
        elif r.media == "multipart/related":
            media = r.params["type"].lower()
            if media not in part_types and not (media.endswith("/*") or media == "*/*"):
                continue
            if media.endswith("/*"):
                media = next((p for p in part_types if _fits(p, media)), "")
                if not media:
                    continue
        else:
            continue
        syntax = r.params.get("transfer-syntax") or DEFAULT_SYNTAX.get(media, EXPLICIT_LE)
        out.append(Offer(media, syntax))
    return out


def instance_syntax(stored: str, accepted: list[Offer]) -> str | None:
    """The syntax to send a stored object in: as stored when allowed ("*" or that syntax),
    else Explicit VR Little Endian (decoded) when asked, else None (406)."""
    for o in accepted:
        if o.syntax in (ANY_SYNTAX, stored):
            return stored
    if any(o.syntax == EXPLICIT_LE for o in accepted):
        return EXPLICIT_LE
    return None


def frame_offer(stored: str, accepted: list[Offer]) -> tuple[str, str, bool] | None:
    """How to send the frames of an object stored in `stored`: (part media type, syntax,
    pass_through). Stored frames go out untouched when the client takes their syntax ("*", or
    that syntax with its media type or application/octet-stream); they are decoded to
    uncompressed little endian only when the client asks for that; None means 406."""
    native = stored in NATIVE_LE
    for o in accepted:
        if o.syntax in (ANY_SYNTAX, stored) or (native and o.syntax == EXPLICIT_LE):
            if native and o.media == "application/octet-stream":
                return "application/octet-stream", EXPLICIT_LE, True
            if not native and o.media in ("application/octet-stream", FRAME_MEDIA.get(stored)):
                return o.media, stored, True
    if any(o.media == "application/octet-stream" and o.syntax == EXPLICIT_LE for o in accepted):
        return "application/octet-stream", EXPLICIT_LE, False
    return None


def parse_viewport(text: str | None, default: int = 128) -> tuple[int, int]:
    """`viewport=vw,vh` of a rendered/thumbnail request (PS3.18 §8.3.5.1.3) -> (width, height)
    the image must fit in; the default is a `default`-pixel square."""
    if not text:
        return default, default
    parts = [p.strip() for p in text.split(",")]
    try:
        w, h = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise BadRequest("viewport is width,height in pixels") from None
    if len(parts) != 2 or not (1 <= w <= 4096 and 1 <= h <= 4096):
        raise BadRequest("viewport is width,height in pixels (1..4096)")
    return w, h


# --- viewer launch tokens ---------------------------------------------------------------------

TOKEN_PREFIX = "dwt1."


class BadToken(ValueError):
    """A viewer token that is malformed, forged, expired or not for this request."""


@dataclass(frozen=True)
class ViewerToken:
    """A read-only DICOMweb grant for one user and one study until `expires` (epoch seconds),
    valid while the user's session epoch is `epoch` (disabling the user, a new password or
    deleting the user revokes it, as they revoke sessions)."""
    user: str
    epoch: str
    study: str
    expires: int


def _token_mac(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, b"dicomweb-viewer\0" + payload.encode(), hashlib.sha256).digest()
    return _b64(mac)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(secret: bytes, t: ViewerToken) -> str:
    """`dwt1.<payload>.<HMAC-SHA256>`: a bearer token OHIF sends (its `?token=` URL parameter
    becomes `Authorization: Bearer ...` on every request)."""
    payload = _b64(json.dumps([t.user, t.epoch, t.study, t.expires],
                               separators=(",", ":")).encode())
    return f"{TOKEN_PREFIX}{payload}.{_token_mac(secret, payload)}"


def read_token(secret: bytes, token: str, now: float) -> ViewerToken:
    """The grant of a token this server made; BadToken if forged, malformed or expired."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 1000:
        raise BadToken("not a viewer token")
    payload, _, mac = token[len(TOKEN_PREFIX):].partition(".")
    if not hmac.compare_digest(mac.encode(), _token_mac(secret, payload).encode()):
        raise BadToken("viewer token not valid")
    try:
        user, epoch, study, expires = json.loads(base64.urlsafe_b64decode(
            payload + "=" * (-len(payload) % 4)))
        t = ViewerToken(str(user), str(epoch), str(study), int(expires))
    except (ValueError, TypeError):
        raise BadToken("viewer token not valid") from None
    if t.expires < now:
        raise BadToken("viewer token expired: open the study from the portal again")
    return t


#: binary VRs whose values /metadata gives by BulkDataURI when they are large
BULK_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})


def element_at(ds, path: str):
    """The element at a bulkdata path `TTTTTTTT[/item/TTTTTTTT...]` (None if absent);
    BadRequest if the path is malformed."""
    parts = path.strip("/").split("/")
    if len(parts) % 2 == 0 or len(parts) > 15:
        raise BadRequest("a bulkdata path is tag[/item/tag...]")
    node = ds
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if not TAG_RE.match(part):
                raise BadRequest("a bulkdata path is tag[/item/tag...] with 8-hex tags")
            tag = int(part, 16)
            if tag not in node:
                return None
            node = node[tag]
        else:
            if not part.isdigit() or node.VR != "SQ":
                raise BadRequest("a bulkdata path is tag[/item/tag...]")
            if int(part) >= len(node.value):
                return None
            node = node.value[int(part)]
    return node
