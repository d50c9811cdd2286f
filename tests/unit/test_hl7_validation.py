"""Per-visit structural validation and PHI refusal: AE for the bad visit only, precise reasons."""
import pytest
from lxml import etree

from hl7_gateway import codes as C
from hl7_gateway.ack import build_ack, parse_ack
from hl7_gateway.builder import build_batch_element, to_bytes
from hl7_gateway.phi_rules import PHI_RULES
from hl7_gateway.hospital.samples import sample_visit, visit_token
from hl7_gateway.id_formats import ID_FORMATS, is_visit_token
from hl7_gateway.models import Exam
from hl7_gateway.parser import ParserLimits, parse_request

V = "{urn:hl7-org:v3}"
ENC = f"{V}controlActProcess/{V}subject/{V}encounterEvent"
PERSON = f"{ENC}/{V}subject/{V}patient/{V}patientPerson"


def batch_with_bad_middle(mutate) -> tuple[bytes, list[str]]:
    """Three visits; the second is mutated in place by ``mutate(message_element)``."""
    visits = [sample_visit(visit_id=visit_token(f"visit{i}")) for i in range(3)]
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
    sub(msg.find(PERSON), "birthTime", value="19570304")


def birth_year(msg):
    sub(msg.find(PERSON), "birthTime", value="1957")


def exact_age_over_90(msg):
    msg.find(f"{ENC}/{V}pertinentInformation/{V}observation/{V}value").set("value", "97")


@pytest.mark.parametrize("mutate, code, where", [
    (add_name, "PHI_NAME", "patientPerson/name"),
    (add_street, "PHI_ADDRESS", "addr/streetAddressLine"),
    (add_postal_code, "PHI_ADDRESS", "addr/postalCode"),
    (add_telecom, "PHI_TELECOM", "patientPerson/telecom"),
    (clear_patient_id, "PHI_IDENTIFIER", "patient/id"),
    (add_other_ids, "PHI_IDENTIFIER", "patientPerson/asOtherIDs"),
    (full_birth_date, "PHI_BIRTH_DATE", "patientPerson/birthTime"),
    (birth_year, "PHI_BIRTH_DATE", "patientPerson/birthTime"),
    (exact_age_over_90, "PHI_AGE", "observation/value"),
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


def test_age_90_means_90_or_more_and_is_accepted():
    body, _ = batch_with_bad_middle(set_attr(
        f"{ENC}/{V}pertinentInformation/{V}observation/{V}value", "value", "90"))
    assert all(r.ok for r in parse_request(body).results)


# --- identifier formats --------------------------------------------------------------------------

def set_extension(path):
    def mutate(value):
        return lambda msg: msg.find(path).set("extension", value)
    return mutate


PATIENT_ID = f"{ENC}/{V}subject/{V}patient/{V}id"
VISIT_ID = f"{ENC}/{V}id"
ACCESSION = f"{ENC}/{V}pertinentInformation[6]/{V}observation/{V}id"


@pytest.mark.parametrize("path, value, code, where", [
    (PATIENT_ID, "57030412345", "PSEUDONYM_FORMAT", "patient/id/@extension"),       # PESEL
    (PATIENT_ID, "RS123", "PSEUDONYM_FORMAT", "patient/id/@extension"),
    (PATIENT_ID, "rsabcdefghijklmnop", "PSEUDONYM_FORMAT", "patient/id/@extension"),
    (VISIT_ID, "V2024-0000017", "VISIT_ID_FORMAT", "encounterEvent/id/@extension"),  # HIS id
    (VISIT_ID, "c2FtcGxlLXZpc2l0", "VISIT_ID_FORMAT", "encounterEvent/id/@extension"),
    (ACCESSION, "A1B2C3D4E5F6", "ACCESSION_FORMAT", "observation/id/@extension"),   # raw
    (ACCESSION, "AC0000000000000", "ACCESSION_FORMAT", "observation/id/@extension"),
])
def test_identifiers_must_be_pseudonym_shaped(path, value, code, where):
    details = middle_errors(set_extension(path)(value))
    hit = next(d for d in details if d.code == code)
    assert hit.location.endswith(where) and value not in hit.text


def test_visit_token_shape():
    assert all(is_visit_token(visit_token(f"V{n}-{'x' * n}")) for n in range(40))
    assert not is_visit_token(visit_token("V1") + "=")
    assert not is_visit_token(visit_token("V1")[:-1] + "*")
    assert not is_visit_token("A" * 21)          # 15 bytes: no room for the 16-byte SIV tag
    assert {r.code for r in ID_FORMATS} == {"VISIT_ID_FORMAT", "PSEUDONYM_FORMAT",
                                            "ACCESSION_FORMAT"}


# --- exam text screen (defence in depth) ----------------------------------------------------------

@pytest.mark.parametrize("text, code", [
    ("Wynik omówiono z Anną Kowalską.", "PHI_TEXT_NAME"),
    ("PESEL 58022248005, RTG bez zmian.", "PHI_TEXT_NATIONAL_ID"),
    ("Kontakt z córką: 601 234 567.", "PHI_TEXT_PHONE"),
    ("Córka Ewa poinformowana.", "PHI_TEXT_NAME"),
])
def test_exam_text_with_phi_is_refused(text, code):
    def mutate(msg):
        msg.find(f"{ENC}/{V}pertinentInformation[6]/{V}observation/{V}text").text = text
    hit = next(d for d in middle_errors(mutate) if d.code == code)
    assert hit.location.endswith("observation/text")
    assert not any(word in hit.text for word in text.split() if len(word) > 4)


def test_redacted_and_clinical_texts_pass_the_gateway_screen():
    texts = ["Wynik omówiono z [NAME]. Tel. [PHONE].", "Choroba Parkinsona, torbiel Bakera.",
             "Hodgkin lymphoma, Baker's cyst 32 x 14 mm, Gleason 3+4=7.", "Hb 11,2 g/dl."]
    visit = sample_visit(exams=[Exam(kind="CT", text=t) for t in texts])
    from hl7_gateway.builder import build_message
    assert parse_request(build_message(visit)).results[0].ok


def test_gateway_text_screen_can_be_switched_off():
    from hl7_gateway.builder import build_message
    body = build_message(sample_visit(exams=[Exam(kind="CT", text="Córka Ewa, 601 234 567.")]))
    assert not parse_request(body).results[0].ok
    assert parse_request(body, ParserLimits(screen_text=False)).results[0].ok
