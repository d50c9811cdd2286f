"""The shapes the MDC requires of a visit's identifiers, as a table of rules (gateway side).

A hospital that forgot to pseudonymise sends a national id, an MRN or a plain HIS visit number
in an ``id/@extension`` whose root is right; the root alone proves nothing. Each rule names the
element (XPath, HL7 namespace as ``v3``), the acknowledgement code and a predicate on the
extension; a message with any extension of the wrong shape is refused (AE), like the PHI rules:

- patient ``id`` (root ``MDC.2``): a keyed pseudonym, ``RS`` + 16 base32 characters
  (``deid.verify.PATIENT_PSEUDONYM``, the same check DICOM PatientID gets);
- encounter ``id`` (root ``MDC.1``): an AES-SIV token (``hospital/visit_crypto.py``): canonical
  unpadded base64url of a 16-byte synthetic IV plus at least one byte of ciphertext;
- exam ``id`` (root ``MDC.3``): a keyed accession hash, ``AC`` + 14 base32 characters
  (``deid.verify.ACCESSION_HASH``, the same as DICOM AccessionNumber).

The check proves shape, not provenance (that needs the hospital's keys), and the texts never
quote the offending value: it may be an identifier in clear.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Callable

from lxml import etree

from deid.verify import ACCESSION_HASH, PATIENT_PSEUDONYM
from hl7_gateway.codes import ACCESSION_ROOT, HL7_NS, PSEUDONYM_ROOT, VISIT_ID_ROOT
from hl7_gateway.phi_rules import PhiHit
from hl7_gateway.xml_location import location

SIV_TAG_BYTES = 16
MAX_VISIT_TOKEN_CHARS = 172  # 16-byte tag + 112 bytes of visit id
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+\Z")


def is_visit_token(value: str) -> bool:
    """Is ``value`` shaped like ``encrypt_visit_id``'s output (canonical base64url, no padding,
    of more than the 16-byte SIV tag)?"""
    if not (0 < len(value) <= MAX_VISIT_TOKEN_CHARS) or len(value) % 4 == 1 \
            or not _BASE64URL.match(value):
        return False
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return False
    canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return len(raw) > SIV_TAG_BYTES and canonical == value


@dataclass(frozen=True)
class IdFormat:
    code: str
    xpath: str
    valid: Callable[[str], bool]
    reason: str


_ENC = ".//v3:controlActProcess/v3:subject/v3:encounterEvent"
ID_FORMATS: tuple[IdFormat, ...] = (
    IdFormat("VISIT_ID_FORMAT", f"{_ENC}/v3:id[@root='{VISIT_ID_ROOT}']", is_visit_token,
             "encounter id extension is not an encrypted visit id (AES-SIV token, base64url)"),
    IdFormat("PSEUDONYM_FORMAT", f"{_ENC}/v3:subject/v3:patient/v3:id[@root='{PSEUDONYM_ROOT}']",
             lambda v: bool(PATIENT_PSEUDONYM.match(v)),
             "patient id extension is not a pseudonym (RS + 16 base32 characters)"),
    IdFormat("ACCESSION_FORMAT",
             f"{_ENC}/v3:pertinentInformation/v3:observation/v3:id[@root='{ACCESSION_ROOT}']",
             lambda v: bool(ACCESSION_HASH.match(v)),
             "exam accession extension is not a de-identified accession (AC + 14 base32 "
             "characters)"),
)

_COMPILED = tuple((rule, etree.XPath(rule.xpath, namespaces={"v3": HL7_NS}))
                  for rule in ID_FORMATS)


def find_bad_ids(message: etree._Element) -> list[PhiHit]:
    """Every identifier of the message whose extension has the wrong shape (a missing
    extension is left to the parser's MISSING_ELEMENT)."""
    return [PhiHit(rule.code, rule.reason, location(node, "@extension"))
            for rule, xpath in _COMPILED for node in xpath(message)
            if node.get("extension") and not rule.valid(node.get("extension"))]
