"""MCCI_IN000002UV01 accept acknowledgements: build (gateway side) and parse (HAS side).

One ``acknowledgement`` element per visit message of the request, typeCode AA or AE, whose
``targetMessage/id`` is that message's id (= the encrypted visit id). When the whole request is
rejected there is a single ``acknowledgement`` with typeCode AR targeting the request id.
Errors go into ``acknowledgementDetail`` (typeCode E) with a code from ACK_DETAIL_SYSTEM, a text
and a location.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from lxml import etree

from hl7_gateway import codes as C
from hl7_gateway.builder import hl7_el, transmission_header, to_bytes
from hl7_gateway.models import AckDetail, Acknowledgement, MessageAck
from hl7_gateway.parser import Hl7Error, ParseOutcome, ParserLimits, find, parse_envelope


def acknowledgement_for(outcome: ParseOutcome, ack_id: str | None = None) -> Acknowledgement:
    """The acknowledgement a parse outcome deserves (pure)."""
    ack_id = ack_id or uuid.uuid4().hex
    if outcome.rejection is not None:
        return Acknowledgement(ack_id=ack_id, messages=[MessageAck(
            message_id=outcome.request_id, type_code="AR", details=[outcome.rejection])])
    return Acknowledgement(ack_id=ack_id, messages=[
        MessageAck(message_id=r.message_id, type_code="AA" if r.ok else "AE",
                   details=list(r.errors))
        for r in outcome.results])


def build_ack_element(ack: Acknowledgement, created: datetime | None = None) -> etree._Element:
    root = hl7_el(None, C.ACK_INTERACTION, ITSVersion="XML_1.0")
    transmission_header(root, ack.ack_id, C.ACK_INTERACTION, created or datetime.now(), "NE",
                         C.GATEWAY_DEVICE_ROOT, C.HAS_DEVICE_ROOT)
    for message in ack.messages:
        node = hl7_el(root, "acknowledgement", typeCode=message.type_code)
        hl7_el(hl7_el(node, "targetMessage"), "id", root=C.MESSAGE_ID_ROOT,
            extension=message.message_id)
        for detail in message.details:
            det = hl7_el(node, "acknowledgementDetail", typeCode="E")
            hl7_el(det, "code", code=detail.code, codeSystem=C.ACK_DETAIL_SYSTEM)
            hl7_el(det, "text", detail.text)
            if detail.location:
                hl7_el(det, "location", detail.location)
    return root


def build_ack(outcome: ParseOutcome, ack_id: str | None = None,
              created: datetime | None = None) -> bytes:
    """Serialized acknowledgement for a parse outcome (what the gateway answers)."""
    return to_bytes(build_ack_element(acknowledgement_for(outcome, ack_id), created))


def _text(parent: etree._Element, path: str) -> str | None:
    node = find(parent, path)
    return node.text if node is not None else None


def parse_ack(body: bytes, limits: ParserLimits = ParserLimits()) -> Acknowledgement:
    """Read an acknowledgement (HAS side); raises Hl7Error if it is not a valid ack."""
    root = parse_envelope(body, limits)
    if etree.QName(root).localname != C.ACK_INTERACTION:
        raise Hl7Error("UNKNOWN_INTERACTION", f"expected {C.ACK_INTERACTION}, got "
                                              f"{etree.QName(root).localname}")
    messages = []
    for node in root.iterchildren(f"{{{C.HL7_NS}}}acknowledgement"):
        type_code = node.get("typeCode")
        if type_code not in C.ACK_CODES:
            raise Hl7Error("INVALID_VALUE", f"acknowledgement typeCode {type_code!r}")
        target = find(node, "targetMessage/id")
        details = [AckDetail(code=find(d, "code").get("code"), text=_text(d, "text") or "",
                             location=_text(d, "location"))
                   for d in node.iterchildren(f"{{{C.HL7_NS}}}acknowledgementDetail")]
        messages.append(MessageAck(message_id=target.get("extension") if target is not None
                                   else None, type_code=type_code, details=details))
    return Acknowledgement(ack_id=find(root, "id").get("extension"), messages=messages)
