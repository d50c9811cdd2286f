"""Hardened parser for MDC HL7 v3 visit messages and batches (see INTERACTION.md).

Two levels of failure, matching the acknowledgement:
- the envelope (size, XML well-formedness, DOCTYPE/entities, depth, namespace, interaction,
  batch header) is wrong -> the whole request is rejected (AR), nothing is stored;
- one visit message is wrong (missing element, unknown code system, bad timestamp, PHI, an
  identifier that is not pseudonym-shaped, exam text the PHI pattern screen flags, ...)
  -> that visit gets AE with precise details, the other visits of the batch are accepted (AA).

The XML parser never resolves entities, never touches the network and never loads a DTD, and any
DOCTYPE is refused outright, which rules out XXE and entity-expansion bombs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from lxml import etree
from pydantic import ValidationError

from hl7_gateway import codes as C
from hl7_gateway.id_formats import find_bad_ids
from hl7_gateway.models import AckDetail, Visit
from hl7_gateway.phi_rules import find_phi
from hl7_gateway.text_phi import find_text_phi
from hl7_gateway.xml_location import location

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_NS = f"{{{C.HL7_NS}}}"
_XSI_TYPE = f"{{{C.XSI_NS}}}type"
_DTD_MARKUP = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_TS = re.compile(r"^\d{12}(\d{2})?$")
_TS_FORMATS = {12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


@dataclass(frozen=True)
class ParserLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = 64
    max_messages: int = 10_000
    # defence in depth: refuse exam text in which the PHI pattern screen (no patient
    # identifiers here) finds anything (settings.hl7_gateway_text_screen)
    screen_text: bool = True


class Hl7Error(Exception):
    """A precise, reportable failure: stable code, human text, XPath-ish location."""

    def __init__(self, code: str, text: str, location: str | None = None):
        super().__init__(f"{code}: {text} at {location}")
        self.detail = AckDetail(code=code, text=text, location=location)


@dataclass(frozen=True)
class VisitResult:
    message_id: str | None
    visit: Visit | None
    errors: tuple[AckDetail, ...] = ()

    @property
    def ok(self) -> bool:
        return self.visit is not None


@dataclass(frozen=True)
class ParseOutcome:
    """Result of one request: either a rejection (AR) or one result per visit message."""
    request_id: str | None
    rejection: AckDetail | None = None
    results: tuple[VisitResult, ...] = field(default_factory=tuple)

    @property
    def visits(self) -> list[Visit]:
        return [r.visit for r in self.results if r.visit is not None]


def hardened_parser() -> etree.XMLParser:
    """lxml parser that cannot fetch, expand or load anything beyond the bytes it is given."""
    return etree.XMLParser(resolve_entities=False, no_network=True, dtd_validation=False,
                           load_dtd=False, huge_tree=False, remove_comments=True,
                           remove_pis=True)


@lru_cache(maxsize=None)
def _steps(path: str) -> tuple[str, ...]:
    return tuple(_NS + step for step in path.split("/"))


def find(parent: etree._Element, path: str) -> etree._Element | None:
    """First element at 'a/b/c' (HL7 namespace) below parent; faster than ElementPath."""
    node = parent
    for step in _steps(path):
        node = next(node.iterchildren(step), None)
        if node is None:
            return None
    return node


@lru_cache(maxsize=None)
def _depth_probe(max_depth: int) -> etree.XPath:
    return etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")


_FOREIGN_ELEMENT = etree.XPath(f"boolean(//*[namespace-uri() != '{C.HL7_NS}'])")


# --- envelope -------------------------------------------------------------------------------------

def parse_envelope(body: bytes, limits: ParserLimits = ParserLimits()) -> etree._Element:
    """Parse and check the envelope; raise Hl7Error (-> AR) if it cannot be trusted at all."""
    if len(body) > limits.max_bytes:
        raise Hl7Error("BODY_TOO_LARGE", f"body of {len(body)} bytes exceeds the limit of "
                                         f"{limits.max_bytes} bytes")
    if _DTD_MARKUP.search(body):
        raise Hl7Error("DOCTYPE_FORBIDDEN", "DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = etree.fromstring(body, hardened_parser())
    except etree.XMLSyntaxError as exc:
        code = "TOO_DEEP" if "depth" in str(exc).lower() else "NOT_XML"
        raise Hl7Error(code, f"body is not well-formed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise Hl7Error("DOCTYPE_FORBIDDEN", "DOCTYPE and ENTITY declarations are not accepted")
    if _depth_probe(limits.max_depth)(root):
        raise Hl7Error("TOO_DEEP", f"elements nested deeper than {limits.max_depth} levels")
    if _FOREIGN_ELEMENT(root):
        raise Hl7Error("WRONG_NAMESPACE", f"every element must be in namespace {C.HL7_NS}",
                       location(root))
    return root


def _batch_messages(batch: etree._Element, limits: ParserLimits) -> list[etree._Element]:
    messages = list(batch.iterchildren(_NS + C.VISIT_INTERACTION))
    if len(messages) > limits.max_messages:
        raise Hl7Error("BATCH_INVALID", f"{len(messages)} messages exceed the limit of "
                                        f"{limits.max_messages}", location(batch))
    total = find(batch, "batchTotalNumber")
    if total is not None and total.get("value") != str(len(messages)):
        raise Hl7Error("BATCH_INVALID", f"batchTotalNumber {total.get('value')} but "
                                        f"{len(messages)} messages (truncated upload?)",
                       location(total, "@value"))
    return messages


def parse_request(body: bytes, limits: ParserLimits = ParserLimits()) -> ParseOutcome:
    """Parse a POSTed body: a batch (MCCI_IN200100UV01) or a single PRPA_IN402001UV02."""
    request_id = None
    try:
        root = parse_envelope(body, limits)
        id_el = find(root, "id")
        request_id = id_el.get("extension") if id_el is not None else None
        if root.tag == _NS + C.BATCH_INTERACTION:
            if request_id is None:
                raise Hl7Error("BATCH_INVALID", "batch has no id", location(root, "id"))
            messages = _batch_messages(root, limits)
        elif root.tag == _NS + C.VISIT_INTERACTION:
            messages = [root]
        else:
            raise Hl7Error("UNKNOWN_INTERACTION", f"root element {etree.QName(root).localname} "
                           f"is neither {C.BATCH_INTERACTION} nor {C.VISIT_INTERACTION}",
                           location(root))
    except Hl7Error as exc:
        return ParseOutcome(request_id, exc.detail)
    return ParseOutcome(request_id, None, tuple(parse_visit_message(m, limits.screen_text)
                                                for m in messages))


# --- one visit message ----------------------------------------------------------------------------

def parse_visit_message(message: etree._Element, screen_text: bool = True) -> VisitResult:
    """One PRPA_IN402001UV02 -> a Visit, or the reasons it is refused (PHI, identifier shapes
    and, if ``screen_text``, PHI patterns in exam text come first, all reported together)."""
    id_el = find(message, "id")
    message_id = id_el.get("extension") if id_el is not None else None
    refusals = [*find_phi(message), *find_bad_ids(message),
                *(find_text_phi(message) if screen_text else ())]
    if refusals:
        return VisitResult(message_id, None,
                           tuple(AckDetail(code=h.code, text=h.reason, location=h.location)
                                 for h in refusals))
    anchors: dict[tuple, tuple[etree._Element, str | None]] = {}
    try:
        fields = _extract_visit(message, anchors)
        return VisitResult(message_id, Visit(**fields))
    except Hl7Error as exc:
        return VisitResult(message_id, None, (exc.detail,))
    except ValidationError as exc:
        return VisitResult(message_id, None, tuple(_validation_details(exc, anchors, message)))


def _validation_details(exc: ValidationError, anchors: dict, message) -> list[AckDetail]:
    """Map pydantic errors to the element the offending field was read from."""
    details = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        prefix = next((loc[:n] for n in range(len(loc), -1, -1) if loc[:n] in anchors), None)
        element, tail = anchors[prefix] if prefix is not None else (message, None)
        field_name = ".".join(str(p) for p in loc) or "visit"
        details.append(AckDetail(code="INVALID_VALUE", text=f"{field_name}: {err['msg']}",
                                 location=location(element, tail)))
    return details


def _require(parent: etree._Element, path: str) -> etree._Element:
    node = find(parent, path)
    if node is None:
        raise Hl7Error("MISSING_ELEMENT", f"required element {path} is missing",
                       location(parent, path))
    return node


def _require_attr(node: etree._Element, attr: str) -> str:
    value = node.get(attr)
    if value is None or not value.strip():
        raise Hl7Error("MISSING_ELEMENT", f"required attribute {attr} is missing",
                       location(node, f"@{attr}"))
    return value


def _timestamp(node: etree._Element) -> datetime:
    value = _require_attr(node, "value")
    try:
        if not _TS.match(value):
            raise ValueError("wrong length or non-digits")
        return datetime.strptime(value, _TS_FORMATS[len(value)])
    except ValueError as exc:
        raise Hl7Error("INVALID_TIMESTAMP", f"{value!r} is not an HL7 TS YYYYMMDDHHMM[SS] "
                                            f"({exc})", location(node, "@value")) from None


def _number(node: etree._Element, attr: str = "value") -> float:
    value = _require_attr(node, attr)
    try:
        return float(value)
    except ValueError:
        raise Hl7Error("INVALID_VALUE", f"{value!r} is not a number",
                       location(node, f"@{attr}")) from None


def _expect_root(node: etree._Element, root: str, what: str) -> str:
    if node.get("root") != root:
        raise Hl7Error("UNKNOWN_ID_ROOT", f"{what} id root must be {root}, got "
                                          f"{node.get('root')!r}", location(node, "@root"))
    return _require_attr(node, "extension")


def _expect_system(node: etree._Element, allowed, what: str) -> str:
    system = node.get("codeSystem")
    if system not in allowed:
        raise Hl7Error("UNKNOWN_CODE_SYSTEM", f"{what} codeSystem {system!r} is not one of "
                                              f"{sorted(allowed)}", location(node, "@codeSystem"))
    return system


def _extract_visit(message: etree._Element, anchors: dict) -> dict:
    """Visit fields read from one message; ``anchors`` records which element gave which field."""
    interaction = _require_attr(_require(message, "interactionId"), "extension")
    if interaction != C.VISIT_INTERACTION:
        raise Hl7Error("UNKNOWN_INTERACTION", f"interaction {interaction} is not "
                       f"{C.VISIT_INTERACTION}", location(message, "interactionId"))
    enc = _require(message, "controlActProcess/subject/encounterEvent")
    return {**_encounter_fields(enc, anchors), **_observation_fields(enc, anchors)}


def _encounter_fields(enc: etree._Element, anchors: dict) -> dict:
    visit_id_el = _require(enc, "id")
    low = _require(enc, "effectiveTime/low")
    high = find(enc, "effectiveTime/high")
    admission = _timestamp(low)
    discharge = _timestamp(high) if high is not None else None
    if discharge is not None and discharge < admission:
        raise Hl7Error("DISCHARGE_BEFORE_ADMISSION", f"discharge {high.get('value')} is before "
                       f"admission {low.get('value')}", location(high, "@value"))
    patient = _require(enc, "subject/patient")
    person = _require(patient, "patientPerson")
    gender = _require(person, "administrativeGenderCode")
    _expect_system(gender, {C.GENDER_SYSTEM}, "administrativeGenderCode")
    sex = _require_attr(gender, "code")
    if sex not in C.SEX_CODES:
        raise Hl7Error("INVALID_SEX", f"sex code {sex!r} is not one of {sorted(C.SEX_CODES)}",
                       location(gender, "@code"))
    city = find(person, "addr/city")
    fields: dict = {
        "visit_id": _expect_root(visit_id_el, C.VISIT_ID_ROOT, "encounter"),
        "patient_id": _expect_root(_require(patient, "id"), C.PSEUDONYM_ROOT, "patient"),
        "sex": sex, "admission": admission, "discharge": discharge,
        "city": city.text if city is not None else None,
    }
    candidates = {("visit_id",): (visit_id_el, "@extension"), ("sex",): (gender, "@code"),
                  ("admission",): (low, "@value"), ("discharge",): (high, "@value"),
                  ("city",): (city, None), (): (enc, None)}
    anchors.update({key: anchor for key, anchor in candidates.items() if anchor[0] is not None})
    return fields


def _observation_fields(enc: etree._Element, anchors: dict) -> dict:
    fields: dict = {"diagnoses": [], "labs": [], "exams": []}
    observations = (obs for rel in enc.iterchildren(_NS + "pertinentInformation")
                    for obs in rel.iterchildren(_NS + "observation"))
    for obs in observations:
        code_el = _require(obs, "code")
        system, code = code_el.get("codeSystem"), code_el.get("code")
        handler = (OBSERVATION_HANDLERS.get((system, code))
                   or OBSERVATION_HANDLERS.get((system, None)))
        if handler is None:
            known = sorted({s for s, _ in OBSERVATION_HANDLERS})
            raise Hl7Error("UNKNOWN_CODE_SYSTEM", f"observation codeSystem {system!r} is not one "
                           f"of {known}", location(code_el, "@codeSystem"))
        target, value = handler(obs, code_el)
        if target == "age":
            fields["age"] = value
            anchors[("age",)] = (obs, "value/@value")
        else:
            anchors[(target, len(fields[target]))] = (obs, None)
            fields[target].append(value)
    if "age" not in fields:
        raise Hl7Error("MISSING_ELEMENT", f"age observation (LOINC {C.AGE_LOINC}) is missing",
                       location(enc, "pertinentInformation"))
    return fields


# --- observation handlers: (codeSystem, code or None for any) -> (Visit field, value) ----------

def _age(obs, code_el):
    value = _require(obs, "value")
    if value.get("unit") != "a":
        raise Hl7Error("INVALID_VALUE", "age unit must be 'a' (years)", location(value, "@unit"))
    years = _number(value)
    if not years.is_integer():
        raise Hl7Error("INVALID_VALUE", "age must be whole years", location(value, "@value"))
    return "age", int(years)


def _diagnosis(obs, code_el):
    value = _require(obs, "value")
    system = _expect_system(value, C.DIAGNOSIS_SYSTEMS, "diagnosis")
    priority = find(obs.getparent(), "priorityNumber")
    return "diagnoses", {
        "system": C.DIAGNOSIS_SYSTEMS[system], "code": _require_attr(value, "code"),
        "display": value.get("displayName"),
        "primary": priority is not None and priority.get("value") == "1",
    }


def _interpretation(obs) -> str | None:
    node = find(obs, "interpretationCode")
    if node is None:
        return None
    _expect_system(node, {C.INTERPRETATION_SYSTEM}, "interpretationCode")
    code = _require_attr(node, "code")
    if code not in C.INTERPRETATION_CODES:
        raise Hl7Error("UNKNOWN_INTERPRETATION", f"interpretation code {code!r} is not an HL7 "
                       "ObservationInterpretation code", location(node, "@code"))
    return code


def _reference_range(obs) -> dict:
    ivl = find(obs, "referenceRange/observationRange/value")
    bounds = {}
    for bound in ("low", "high"):
        node = find(ivl, bound) if ivl is not None else None
        bounds[bound] = _number(node) if node is not None else None
    return bounds


def _lab(obs, code):
    value = _require(obs, "value")
    if value.get(_XSI_TYPE) != "PQ":
        raise Hl7Error("INVALID_VALUE", "lab value must be xsi:type PQ",
                       location(value, "@xsi:type"))
    return "labs", {
        "code": _require_attr(code, "code"), "name": code.get("displayName") or code.get("code"),
        "value": _number(value), "unit": _require_attr(value, "unit"),
        "interpretation": _interpretation(obs), **_reference_range(obs),
    }


def _exam(obs, code):
    kind = _require_attr(code, "code")
    if kind not in C.EXAM_KINDS:
        raise Hl7Error("UNKNOWN_CODE", f"exam kind {kind!r} is not one of {sorted(C.EXAM_KINDS)}",
                       location(code, "@code"))
    accession = find(obs, "id")
    return "exams", {
        "kind": kind,
        "accession": _expect_root(accession, C.ACCESSION_ROOT, "accession")
        if accession is not None else None,
        "text": getattr(find(obs, "text"), "text", None) or "",
    }


OBSERVATION_HANDLERS = {
    (C.LOINC_SYSTEM, C.AGE_LOINC): _age,
    (C.ACT_CODE_SYSTEM, "ASSERTION"): _diagnosis,
    (C.LOINC_SYSTEM, None): _lab,
    (C.EXAM_KIND_SYSTEM, None): _exam,
}
