"""Hostile envelopes are rejected as a whole (AR) with a precise reason."""
import pytest
from lxml import etree

from hl7_gateway.ack import build_ack, parse_ack
from hl7_gateway.builder import build_batch, build_message
from hl7_gateway.parser import ParserLimits, hardened_parser, parse_request
from hl7_gateway.hospital.samples import sample_visit

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE PRPA_IN402001UV02 [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<PRPA_IN402001UV02 xmlns="urn:hl7-org:v3"><id>&xxe;</id></PRPA_IN402001UV02>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<PRPA_IN402001UV02 xmlns="urn:hl7-org:v3"><id extension="&lol5;"/></PRPA_IN402001UV02>"""


def rejection_of(body: bytes, limits: ParserLimits = ParserLimits()):
    outcome = parse_request(body, limits)
    ack = parse_ack(build_ack(outcome))
    assert ack.type_code == "AR" and outcome.results == ()
    (detail,) = ack.messages[0].details
    return detail


def nested(depth: int) -> bytes:
    return (b'<PRPA_IN402001UV02 xmlns="urn:hl7-org:v3">' + b"<x>" * (depth - 1)
            + b"</x>" * (depth - 1) + b"</PRPA_IN402001UV02>")


@pytest.mark.parametrize("body", [XXE, BILLION_LAUGHS, b'<!doctype x><x xmlns="urn:hl7-org:v3"/>'],
                         ids=["xxe", "billion-laughs", "plain-doctype"])
def test_dtd_markup_is_rejected(body):
    assert rejection_of(body).code == "DOCTYPE_FORBIDDEN"


def test_doctype_hidden_in_utf16_is_still_rejected():
    body = XXE.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
    assert rejection_of(body.decode().encode("utf-16")).code == "DOCTYPE_FORBIDDEN"


@pytest.mark.parametrize("body", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_hardened_parser_never_expands_entities(body):
    """Defence in depth below the DOCTYPE refusal: nothing is fetched or expanded."""
    text = etree.tostring(etree.fromstring(body, hardened_parser())).decode()
    assert "root:" not in text and "lollol" not in text


def test_body_over_default_limit_is_rejected_before_parsing():
    assert ParserLimits().max_bytes == 20 * 1024 * 1024
    body = b" " * (50 * 1024 * 1024)
    detail = rejection_of(body)
    assert detail.code == "BODY_TOO_LARGE" and str(len(body)) in detail.text


def test_size_limit_is_configurable():
    body = build_batch([sample_visit()] * 3)
    assert parse_request(body, ParserLimits(max_bytes=len(body))).rejection is None
    assert rejection_of(body, ParserLimits(max_bytes=len(body) - 1)).code == "BODY_TOO_LARGE"


@pytest.mark.parametrize("depth", [65, 300, 5000])
def test_too_deep_nesting_is_rejected(depth):
    assert rejection_of(nested(depth)).code == "TOO_DEEP"


def test_depth_at_limit_is_not_a_depth_error():
    assert parse_request(nested(64)).rejection is None


@pytest.mark.parametrize("body", [b"not xml at all", b"<a><b></a>", b""], ids=str)
def test_not_xml_is_rejected(body):
    assert rejection_of(body).code == "NOT_XML"


def test_wrong_root_namespace_is_rejected():
    body = build_message(sample_visit()).replace(b"urn:hl7-org:v3", b"urn:hl7-org:v2")
    assert rejection_of(body).code == "WRONG_NAMESPACE"


def test_foreign_element_inside_is_rejected():
    body = build_message(sample_visit()).replace(
        b"<controlActProcess", b'<evil xmlns="urn:other"/><controlActProcess', 1)
    detail = rejection_of(body)
    assert detail.code == "WRONG_NAMESPACE"


def test_unknown_root_interaction_is_rejected():
    body = b'<QUQI_IN000003UV01 xmlns="urn:hl7-org:v3"><id extension="q"/></QUQI_IN000003UV01>'
    detail = rejection_of(body)
    assert detail.code == "UNKNOWN_INTERACTION"


def test_truncated_batch_count_is_rejected():
    body = build_batch([sample_visit()] * 2).replace(b'batchTotalNumber value="2"',
                                                      b'batchTotalNumber value="3"')
    assert rejection_of(body).code == "BATCH_INVALID"


def test_too_many_messages_is_rejected():
    body = build_batch([sample_visit()] * 3)
    assert rejection_of(body, ParserLimits(max_messages=2)).code == "BATCH_INVALID"
