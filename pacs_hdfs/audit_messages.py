"""DICOM audit messages (PS3.15 A.5: the RFC 3881 schema with DICOM's extensions) as XML.

Pure: values in, an `lxml` element or bytes out; no I/O. The codes are tables (DICOM CID 400
Audit Event ID, 401 Event Type, 402 Active Participant Role, the RFC 3881 / DICOM participant
object ID types); `message` assembles one `AuditMessage` in the schema's element order:
EventIdentification, ActiveParticipant+, AuditSourceIdentification,
ParticipantObjectIdentification*.

`validate` checks a message against `audit_message.rng`, a RELAX NG transcription of the
schema in PS3.15 A.5.1 (one relaxation, noted there). `pacs_hdfs.dicom.dimse_audit` builds the
MDC DIMSE service's messages with this module; `pacs_hdfs.audit_syslog` sends them to syslog.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from lxml import etree

#: (code value, coding scheme designator, code meaning)
Code = tuple[str, str, str]

#: CID 400 Audit Event ID
EVENT_IDS: dict[str, Code] = {
    "application_activity": ("110100", "DCM", "Application Activity"),
    "instances_accessed": ("110103", "DCM", "DICOM Instances Accessed"),
    "instances_transferred": ("110104", "DCM", "DICOM Instances Transferred"),
    "instances_deleted": ("110105", "DCM", "DICOM Instances Deleted"),
    "export": ("110106", "DCM", "Export"),
    "import": ("110107", "DCM", "Import"),
    "query": ("110112", "DCM", "Query"),
    "security_alert": ("110113", "DCM", "Security Alert"),
    "user_authentication": ("110114", "DCM", "User Authentication"),
}
#: CID 401 Audit Event Type Code (the subset used here)
EVENT_TYPES: dict[str, Code] = {
    "application_start": ("110120", "DCM", "Application Start"),
    "application_stop": ("110121", "DCM", "Application Stop"),
    "login": ("110122", "DCM", "Login"),
    "logout": ("110123", "DCM", "Logout"),
    "node_authentication": ("110126", "DCM", "Node Authentication"),
}
#: CID 402 Audit Active Participant Role ID Code
ROLES: dict[str, Code] = {
    "application": ("110150", "DCM", "Application"),
    "application_launcher": ("110151", "DCM", "Application Launcher"),
    "destination": ("110152", "DCM", "Destination Role ID"),
    "source": ("110153", "DCM", "Source Role ID"),
}
#: Participant Object ID Type Code (RFC 3881 5.5.4 and DICOM's additions)
OBJECT_ID_TYPES: dict[str, Code] = {
    "patient_number": ("2", "RFC-3881", "Patient Number"),
    "study_instance_uid": ("110180", "DCM", "Study Instance UID"),
    "sop_class_uid": ("110181", "DCM", "SOP Class UID"),
    "node_id": ("110182", "DCM", "Node ID"),
}
#: EventActionCode
ACTIONS = {"create": "C", "read": "R", "update": "U", "delete": "D", "execute": "E"}
#: EventOutcomeIndicator
OUTCOMES = {"success": "0", "minor_failure": "4", "serious_failure": "8", "major_failure": "12"}
#: ParticipantObjectTypeCode / ParticipantObjectTypeCodeRole (A.5.1.2.2)
OBJECT_TYPES = {"person": "1", "system_object": "2", "organization": "3", "other": "4"}
OBJECT_ROLES = {"patient": "1", "report": "3", "resource": "4", "user": "6", "query": "24"}
#: AuditSourceTypeCode (A.5.1.2.1): 4 = application server process
APPLICATION_SERVER = "4"
#: NetworkAccessPointTypeCode: 1 machine name, 2 IP address
NAP_TYPES = {"machine": "1", "ip": "2"}

SCHEMA = Path(__file__).with_name("audit_message.rng")


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: a user or process, and where it is on the network."""
    user_id: str
    requestor: bool
    role: str | None = None               # key of ROLES
    alternative_user_id: str = ""
    user_name: str = ""
    address: str = ""                     # NetworkAccessPointID (an IP address)


@dataclass(frozen=True)
class ParticipantObject:
    """A ParticipantObjectIdentification: a patient, a study, a query."""
    id: str
    id_type: str                          # key of OBJECT_ID_TYPES
    type: str = "system_object"           # key of OBJECT_TYPES
    role: str | None = None               # key of OBJECT_ROLES
    name: str = ""
    query: bytes = b""                    # the query as sent (base64 in the message)
    details: tuple[tuple[str, bytes], ...] = ()   # ParticipantObjectDetail type/value pairs
    sop_classes: tuple[tuple[str, int], ...] = ()  # (SOP Class UID, number of instances)
    anonymized: bool | None = None


def study(uid: str, sop_classes: dict[str, int] | None = None,
          anonymized: bool | None = None) -> ParticipantObject:
    return ParticipantObject(uid, "study_instance_uid", "system_object", "report",
                             sop_classes=tuple(sorted((sop_classes or {}).items())),
                             anonymized=anonymized)


def patient(patient_id: str, name: str = "") -> ParticipantObject:
    return ParticipantObject(patient_id, "patient_number", "person", "patient", name=name)


def query(sop_class_uid: str, identifier: bytes, transfer_syntax: str = "",
          details: tuple[tuple[str, bytes], ...] = ()) -> ParticipantObject:
    """A.5.3.12: the query's SOP class, the encoded identifier and its transfer syntax."""
    ts = (("TransferSyntax", transfer_syntax.encode()),) if transfer_syntax else ()
    return ParticipantObject(sop_class_uid, "sop_class_uid", "system_object", "report",
                             query=identifier, details=ts + details)


@dataclass(frozen=True)
class Event:
    """What happened: EventIdentification."""
    id: str                               # key of EVENT_IDS
    action: str                           # key of ACTIONS
    outcome: str = "success"              # key of OUTCOMES
    types: tuple[str, ...] = ()           # keys of EVENT_TYPES
    description: str = ""                 # EventOutcomeDescription
    when: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def _coded(parent: etree._Element, tag: str, code: Code) -> etree._Element:
    value, scheme, meaning = code
    return etree.SubElement(parent, tag, {"csd-code": value, "codeSystemName": scheme,
                                          "originalText": meaning})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def message(event: Event, participants: list[Participant], source_id: str,
            objects: list[ParticipantObject] = (), site_id: str = "") -> etree._Element:
    """One AuditMessage."""
    root = etree.Element("AuditMessage")
    ev = etree.SubElement(root, "EventIdentification", {
        "EventActionCode": ACTIONS[event.action],
        "EventDateTime": event.when.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
        "EventOutcomeIndicator": OUTCOMES[event.outcome]})
    _coded(ev, "EventID", EVENT_IDS[event.id])
    for t in event.types:
        _coded(ev, "EventTypeCode", EVENT_TYPES[t])
    if event.description:
        etree.SubElement(ev, "EventOutcomeDescription").text = event.description
    for p in participants:
        attrs = {"UserID": p.user_id, "UserIsRequestor": "true" if p.requestor else "false"}
        if p.alternative_user_id:
            attrs["AlternativeUserID"] = p.alternative_user_id
        if p.user_name:
            attrs["UserName"] = p.user_name
        if p.address:
            attrs.update(NetworkAccessPointID=p.address, NetworkAccessPointTypeCode=NAP_TYPES["ip"])
        ap = etree.SubElement(root, "ActiveParticipant", attrs)
        if p.role:
            _coded(ap, "RoleIDCode", ROLES[p.role])
    src = etree.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": source_id})
    if site_id:
        src.set("AuditEnterpriseSiteID", site_id)
    etree.SubElement(src, "AuditSourceTypeCode", {"csd-code": APPLICATION_SERVER})
    for o in objects:
        attrs = {"ParticipantObjectID": o.id, "ParticipantObjectTypeCode": OBJECT_TYPES[o.type]}
        if o.role:
            attrs["ParticipantObjectTypeCodeRole"] = OBJECT_ROLES[o.role]
        po = etree.SubElement(root, "ParticipantObjectIdentification", attrs)
        _coded(po, "ParticipantObjectIDTypeCode", OBJECT_ID_TYPES[o.id_type])
        if o.name:
            etree.SubElement(po, "ParticipantObjectName").text = o.name
        elif o.query:
            etree.SubElement(po, "ParticipantObjectQuery").text = _b64(o.query)
        for kind, value in o.details:
            etree.SubElement(po, "ParticipantObjectDetail", {"type": kind, "value": _b64(value)})
        if o.sop_classes or o.anonymized is not None:
            desc = etree.SubElement(po, "ParticipantObjectDescription")
            for uid, n in o.sop_classes:
                etree.SubElement(desc, "SOPClass", {"UID": uid, "NumberOfInstances": str(n)})
            if o.anonymized is not None:
                etree.SubElement(desc, "Anonymized").text = "true" if o.anonymized else "false"
    return root


def to_bytes(msg: etree._Element) -> bytes:
    """UTF-8 XML with its declaration: what goes into the audit trail and to syslog."""
    return etree.tostring(msg, xml_declaration=True, encoding="UTF-8")


@lru_cache(maxsize=1)
def _schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


def validate(xml: bytes | etree._Element) -> list[str]:
    """The schema errors of a message (empty when it conforms)."""
    doc = etree.fromstring(xml) if isinstance(xml, bytes) else xml
    schema = _schema()
    return [] if schema.validate(doc) else [str(e) for e in schema.error_log]
