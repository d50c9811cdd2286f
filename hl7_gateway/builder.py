"""Build HL7 v3 XML for de-identified visits: one PRPA_IN402001UV02 per visit, many per batch.

The exact element layout, OIDs and an example are in INTERACTION.md; the parser reads back
exactly what is written here. Only fields of ``Visit`` are written, so nothing the model does
not carry (names, addresses, hospital ids) can leak into a message.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Iterable

from lxml import etree

from hl7_gateway import codes as C
from hl7_gateway.models import Diagnosis, Exam, Lab, Visit

_XSI_TYPE = f"{{{C.XSI_NS}}}type"


def format_ts(moment: datetime) -> str:
    """HL7 TS with second precision, naive local time (YYYYMMDDHHMMSS)."""
    return moment.strftime("%Y%m%d%H%M%S")


def format_number(value: float) -> str:
    """Shortest decimal text that round-trips the float (HL7 REAL literal)."""
    return repr(float(value)).removesuffix(".0")


def hl7_el(parent: etree._Element | None, tag: str, text: str | None = None, **attrs: str):
    """Create an HL7-namespaced element (a new root if parent is None); None attrs are skipped."""
    attrs = {k: v for k, v in attrs.items() if v is not None}
    qname = f"{{{C.HL7_NS}}}{tag}"
    node = etree.Element(qname, attrs, nsmap=C.NSMAP) if parent is None else \
        etree.SubElement(parent, qname, attrs)
    if text is not None:
        node.text = text
    return node


def _device(parent, role: str, type_code: str, root: str) -> None:
    device = hl7_el(hl7_el(parent, role, typeCode=type_code), "device",
                 classCode="DEV", determinerCode="INSTANCE")
    hl7_el(device, "id", root=root)


def transmission_header(node, msg_id: str, interaction: str, created: datetime,
                         accept_ack: str, sender_root: str, receiver_root: str) -> None:
    hl7_el(node, "id", root=C.MESSAGE_ID_ROOT, extension=msg_id)
    hl7_el(node, "creationTime", value=format_ts(created))
    hl7_el(node, "interactionId", root=C.INTERACTION_ROOT, extension=interaction)
    hl7_el(node, "processingCode", code="P")
    hl7_el(node, "processingModeCode", code="T")
    hl7_el(node, "acceptAckCode", code=accept_ack)
    _device(node, "receiver", "RCV", receiver_root)
    _device(node, "sender", "SND", sender_root)


def _pertinent(encounter, priority: int | None = None):
    rel = hl7_el(encounter, "pertinentInformation", typeCode="PERT")
    if priority is not None:
        hl7_el(rel, "priorityNumber", value=str(priority))
    return hl7_el(rel, "observation", classCode="OBS", moodCode="EVN")


def _add_age(encounter, age: int) -> None:
    obs = _pertinent(encounter)
    hl7_el(obs, "code", code=C.AGE_LOINC, codeSystem=C.LOINC_SYSTEM, displayName="Age")
    hl7_el(obs, "value", **{_XSI_TYPE: "PQ", "value": str(age), "unit": "a"})


def _add_diagnosis(encounter, dx: Diagnosis) -> None:
    obs = _pertinent(encounter, priority=1 if dx.primary else 2)
    hl7_el(obs, "code", code="ASSERTION", codeSystem=C.ACT_CODE_SYSTEM)
    hl7_el(obs, "value", **{_XSI_TYPE: "CD", "code": dx.code,
                         "codeSystem": C.DIAGNOSIS_SYSTEM_OIDS[dx.system],
                         "displayName": dx.display})


def _add_lab(encounter, lab: Lab) -> None:
    obs = _pertinent(encounter)
    hl7_el(obs, "code", code=lab.code, codeSystem=C.LOINC_SYSTEM, displayName=lab.name)
    hl7_el(obs, "value", **{_XSI_TYPE: "PQ", "value": format_number(lab.value), "unit": lab.unit})
    if lab.interpretation is not None:
        hl7_el(obs, "interpretationCode", code=lab.interpretation,
               codeSystem=C.INTERPRETATION_SYSTEM)
    if lab.low is not None or lab.high is not None:
        ivl = hl7_el(hl7_el(hl7_el(obs, "referenceRange"), "observationRange"), "value",
                  **{_XSI_TYPE: "IVL_PQ"})
        for bound, value in (("low", lab.low), ("high", lab.high)):
            if value is not None:
                hl7_el(ivl, bound, value=format_number(value), unit=lab.unit)


def _add_exam(encounter, exam: Exam) -> None:
    obs = _pertinent(encounter)
    if exam.accession is not None:
        hl7_el(obs, "id", root=C.ACCESSION_ROOT, extension=exam.accession)
    hl7_el(obs, "code", code=exam.kind, codeSystem=C.EXAM_KIND_SYSTEM,
        displayName=C.EXAM_KINDS[exam.kind])
    hl7_el(obs, "text", exam.text)


def build_visit_element(visit: Visit, created: datetime | None = None) -> etree._Element:
    """One PRPA_IN402001UV02 message; its message id extension is the encrypted visit id."""
    created = created or datetime.now()
    msg = hl7_el(None, C.VISIT_INTERACTION, ITSVersion="XML_1.0")
    transmission_header(msg, visit.visit_id, C.VISIT_INTERACTION, created, "AL",
                         C.HAS_DEVICE_ROOT, C.GATEWAY_DEVICE_ROOT)
    cap = hl7_el(msg, "controlActProcess", classCode="CACT", moodCode="EVN")
    hl7_el(cap, "code", code=C.TRIGGER_EVENT, codeSystem=C.TRIGGER_EVENT_ROOT)
    enc = hl7_el(hl7_el(cap, "subject", typeCode="SUBJ"), "encounterEvent",
              classCode="ENC", moodCode="EVN")
    hl7_el(enc, "id", root=C.VISIT_ID_ROOT, extension=visit.visit_id)
    hl7_el(enc, "code", code=C.ENCOUNTER_CODE, codeSystem=C.ACT_CODE_SYSTEM)
    hl7_el(enc, "statusCode", code="active" if visit.discharge is None else "completed")
    period = hl7_el(enc, "effectiveTime")
    hl7_el(period, "low", value=format_ts(visit.admission))
    if visit.discharge is not None:
        hl7_el(period, "high", value=format_ts(visit.discharge))
    patient = hl7_el(hl7_el(enc, "subject", typeCode="SBJ"), "patient", classCode="PAT")
    hl7_el(patient, "id", root=C.PSEUDONYM_ROOT, extension=visit.patient_id)
    person = hl7_el(patient, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    hl7_el(person, "administrativeGenderCode", code=visit.sex, codeSystem=C.GENDER_SYSTEM)
    if visit.city is not None:
        hl7_el(hl7_el(person, "addr"), "city", visit.city)
    _add_age(enc, visit.age)
    for dx in visit.diagnoses:
        _add_diagnosis(enc, dx)
    for lab in visit.labs:
        _add_lab(enc, lab)
    for exam in visit.exams:
        _add_exam(enc, exam)
    return msg


def build_batch_element(visits: Iterable[Visit], batch_id: str | None = None,
                        created: datetime | None = None) -> etree._Element:
    """MCCI_IN200100UV01 batch wrapper holding one PRPA_IN402001UV02 per visit."""
    created = created or datetime.now()
    visits = list(visits)
    batch = hl7_el(None, C.BATCH_INTERACTION, ITSVersion="XML_1.0")
    transmission_header(batch, batch_id or uuid.uuid4().hex, C.BATCH_INTERACTION, created, "AL",
                         C.HAS_DEVICE_ROOT, C.GATEWAY_DEVICE_ROOT)
    hl7_el(batch, "batchTotalNumber", value=str(len(visits)))
    for visit in visits:
        batch.append(build_visit_element(visit, created))
    return batch


def to_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def build_message(visit: Visit, created: datetime | None = None) -> bytes:
    """Serialized single-visit message."""
    return to_bytes(build_visit_element(visit, created))


def build_batch(visits: Iterable[Visit], batch_id: str | None = None,
                created: datetime | None = None) -> bytes:
    """Serialized batch of visits, the body the HAS client POSTs to the gateway."""
    return to_bytes(build_batch_element(visits, batch_id, created))
