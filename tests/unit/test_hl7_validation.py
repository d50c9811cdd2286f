"""Per-visit structural validation and PHI refusal: AE for the bad visit only, precise reasons."""
import pytest
from lxml import etree

from hl7_gateway import codes as C
from hl7_gateway.ack import build_ack, parse_ack
from hl7_gateway.builder import build_batch_element, to_bytes
from hl7_gateway.phi_rules import PHI_RULES
from hl7_gateway.hospital.samples import sample_visit
from hl7_gateway.parser import parse_request

V = "{urn:hl7-org:v3}"
ENC = f"{V}controlActProcess/{V}subject/{V}encounterEvent"
PERSON = f"{ENC}/{V}subject/{V}patient/{V}patientPerson"


def batch_with_bad_middle(mutate) -> tuple[bytes, list[str]]:
    """Three visits; the second is mutated in place by ``mutate(message_element)``."""
    visits = [sample_visit(visit_id=f"visit{i}") for i in range(3)]
    batch = build_batch_element(visits, batch_id="b")
    mutate(batch.findall(f"{V}PRPA_IN402001UV02")[1])
    return to_bytes(batch), [v.visit_id for v in visits]


def middle_errors(mutate):
    body, ids = batch_with_bad_middle(mutate)
    outcome = parse_request(body)
    assert outcome.rejection is None
    ack = parse_ack(build_ack(outcome))
    assert [m.type_code for m in ack.messages] == ["AA", "AE", "AA"]
    assert [m.message_id for m in ack.messages] == ids
    assert [r.visit.visit_id for r in outcome.results if r.ok] == [ids[0], ids[2]]
    return ack.messages[1].details


def sub(parent, tag, text=None, **attrs):
    node = etree.SubElement(parent, V + tag, attrs)
    node.text = text
    return node


def remove(path):
    def mutate(msg):
        node = msg.find(path)
        node.getparent().remove(node)
    return mutate


def set_attr(path, attr, value):
    def mutate(msg):
        msg.find(path).set(attr, value)
    return mutate


@pytest.mark.parametrize("path, missing", [
    (ENC, "controlActProcess/subject/encounterEvent"),
    (f"{ENC}/{V}effectiveTime/{V}low", "effectiveTime/low"),
    (f"{ENC}/{V}subject", "subject/patient"),
    (f"{PERSON}/{V}administrativeGenderCode", "administrativeGenderCode"),
    (f"{ENC}/{V}id", "encounterEvent/id"),
])
def test_missing_required_element(path, missing):
    (detail,) = middle_errors(remove(path))
    assert detail.code == "MISSING_ELEMENT"
    assert detail.location.startswith("/MCCI_IN200100UV01/PRPA_IN402001UV02[2]/")
    assert detail.location.endswith(missing)


def test_missing_age_observation():
    def mutate(msg):
        rel = msg.find(f"{ENC}/{V}pertinentInformation")  # the first one is the age
        rel.getparent().remove(rel)
    (detail,) = middle_errors(mutate)
    assert detail.code == "MISSING_ELEMENT" and C.AGE_LOINC in detail.text


def test_unknown_diagnosis_code_system():
    path = f"{ENC}/{V}pertinentInformation[2]/{V}observation/{V}value"
    (detail,) = middle_errors(set_attr(path, "codeSystem", "2.16.840.1.113883.6.96"))
    assert detail.code == "UNKNOWN_CODE_SYSTEM"
    assert detail.location.endswith("pertinentInformation[2]/observation/value/@codeSystem")


def test_unknown_observation_code_system():
    path = f"{ENC}/{V}pertinentInformation[4]/{V}observation/{V}code"
    (detail,) = middle_errors(set_attr(path, "codeSystem", "1.2.3.4"))
    assert detail.code == "UNKNOWN_CODE_SYSTEM"


@pytest.mark.parametrize("value", ["2024030108", "202403010815+0100", "20241301081500",
                                   "2024-03-01", "20240230081500"])
def test_invalid_timestamp(value):
    (detail,) = middle_errors(set_attr(f"{ENC}/{V}effectiveTime/{V}low", "value", value))
    assert detail.code == "INVALID_TIMESTAMP" and value in detail.text
    assert detail.location.endswith("effectiveTime/low/@value")


def test_minute_precision_timestamp_is_accepted():
    body, _ = batch_with_bad_middle(set_attr(f"{ENC}/{V}effectiveTime/{V}low", "value",
                                             "202403010815"))
    assert all(r.ok for r in parse_request(body).results)


def test_discharge_before_admission():
    (detail,) = middle_errors(set_attr(f"{ENC}/{V}effectiveTime/{V}high", "value",
                                       "20240229235959"))
    assert detail.code == "DISCHARGE_BEFORE_ADMISSION"


@pytest.mark.parametrize("sex", ["X", "U", "male", ""])
def test_sex_code_outside_allowed_set(sex):
    (detail,) = middle_errors(set_attr(f"{PERSON}/{V}administrativeGenderCode", "code", sex))
    assert detail.code in {"INVALID_SEX", "MISSING_ELEMENT"}
    assert detail.location.endswith("administrativeGenderCode/@code")


def test_unknown_lab_interpretation():
    path = f"{ENC}/{V}pertinentInformation[4]/{V}observation/{V}interpretationCode"
    (detail,) = middle_errors(set_attr(path, "code", "WEIRD"))
    assert detail.code == "UNKNOWN_INTERPRETATION"


def test_unknown_exam_kind():
    path = f"{ENC}/{V}pertinentInformation[6]/{V}observation/{V}code"
    (detail,) = middle_errors(set_attr(path, "code", "PET"))
    assert detail.code == "UNKNOWN_CODE"


def test_invalid_icd10_code_format_is_reported_at_its_element():
    path = f"{ENC}/{V}pertinentInformation[2]/{V}observation/{V}value"
    (detail,) = middle_errors(set_attr(path, "code", "hypertension"))
    assert detail.code == "INVALID_VALUE" and "ICD10" in detail.text
    assert detail.location.endswith("pertinentInformation[2]/observation")


# --- PHI refusal ---------------------------------------------------------------------------------

def add_name(msg):
    name = sub(msg.find(PERSON), "name")
    sub(name, "given", "Anna")
    sub(name, "family", "Nowak")


def add_street(msg):
    sub(msg.find(f"{PERSON}/{V}addr"), "streetAddressLine", "ul. Lipowa 12")


def add_postal_code(msg):
    sub(msg.find(f"{PERSON}/{V}addr"), "postalCode", "50-123")


def add_telecom(msg):
    sub(msg.find(PERSON), "telecom", value="tel:+48601234567")


def clear_patient_id(msg):
    msg.find(f"{ENC}/{V}subject/{V}patient/{V}id").set("root", "2.16.616.1.113883.3.4424.1.1")


def add_other_ids(msg):
    other = sub(msg.find(PERSON), "asOtherIDs", classCode="PAT")
    sub(other, "id", root="1.2.3", extension="MRN0000001")


def full_birth_date(msg):
    msg.find(f"{PERSON}/{V}birthTime").set("value", "19570304")


@pytest.mark.parametrize("mutate, code, where", [
    (add_name, "PHI_NAME", "patientPerson/name"),
    (add_street, "PHI_ADDRESS", "addr/streetAddressLine"),
    (add_postal_code, "PHI_ADDRESS", "addr/postalCode"),
    (add_telecom, "PHI_TELECOM", "patientPerson/telecom"),
    (clear_patient_id, "PHI_IDENTIFIER", "patient/id"),
    (add_other_ids, "PHI_IDENTIFIER", "patientPerson/asOtherIDs"),
    (full_birth_date, "PHI_BIRTH_DATE", "patientPerson/birthTime"),
])
def test_phi_is_refused_with_reason_and_location(mutate, code, where):
    details = middle_errors(mutate)
    assert code in {d.code for d in details}
    hit = next(d for d in details if d.code == code)
    assert hit.location.endswith(where) and hit.text


def test_name_anywhere_in_payload_is_refused():
    def mutate(msg):
        obs = msg.find(f"{ENC}/{V}pertinentInformation[6]/{V}observation")
        person = sub(sub(sub(obs, "author"), "assignedEntity"), "assignedPerson")
        sub(person, "name", "Dr Jan Kowalski")
    assert "PHI_NAME" in {d.code for d in middle_errors(mutate)}


def test_every_phi_rule_has_code_and_reason():
    assert all(r.code.startswith("PHI_") and r.reason and r.xpath for r in PHI_RULES)
