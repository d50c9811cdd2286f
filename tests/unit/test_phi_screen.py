"""The free-text PHI screen: its score on the labelled exam-text set, and specific cases.

The set (``tests/data/phi_screen``, 506 lines, Polish and English) and the metric definitions
are described in ``benchmarks/phi_screen/score.py``; measured numbers are in
``benchmarks/phi_screen/RESULTS.md``.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the benchmarks package
from benchmarks.phi_screen.score import DATA, load_lines, score  # noqa: E402
from hl7_gateway.hospital.phi_screen import (PhiRefused, PhiScreen,  # noqa: E402
                                             patient_findings, scrub_text)
from hl7_gateway.text_phi import (find_phi_spans, inflect, redact,  # noqa: E402
                                  valid_idcard, valid_nhs, valid_passport, valid_pesel,
                                  valid_phone)


def _build_module():
    path = Path(DATA).parent / "build.py"
    spec = importlib.util.spec_from_file_location("phi_set_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lines():
    return load_lines()


@pytest.fixture(scope="module")
def result(lines):
    return score(lines)


# --- the labelled set --------------------------------------------------------------------------

def test_set_is_built_from_its_sources_and_large_enough(lines):
    assert Path(DATA).read_text(encoding="utf-8") == _build_module().render(), \
        "run python tests/data/phi_screen/build.py after editing a source"
    assert len(lines) >= 300
    assert {line["lang"] for line in lines} >= {"pl", "en"}
    with_phi = sum(bool(line["spans"]) for line in lines)
    assert 0.3 < with_phi / len(lines) < 0.7     # both PHI and clean lines, tricky numbers too
    for line in lines:
        for span in line["spans"]:
            assert line["text"][span["start"]:span["end"]] == span["text"]


def test_recall_and_precision_on_the_set(result):
    assert result["recall"] >= 0.95, result["misses"]
    assert result["precision"] >= 0.85, result["false_positives"]
    assert result["line_recall"] >= 0.95
    for category, numbers in result["per_category"].items():
        assert numbers["gold"] > 0, f"no {category} in the set"
        assert numbers["recall"] >= 0.9, (category, numbers)


def test_heldout_lines_score_too(lines):
    heldout = score([line for line in lines if line["set"] == "heldout"])
    assert heldout["recall"] >= 0.95 and heldout["precision"] >= 0.85


def test_redacted_lines_screen_clean(result, lines):
    """What the hospital sends must pass the gateway's second screen."""
    assert result["idempotent_lines"] == len(lines)


def test_who_icd10_descriptions_are_almost_never_flagged():
    from benchmarks.phi_screen.score import icd10_false_positives
    from hl7_gateway.text_phi import default_screen
    found = icd10_false_positives(default_screen())
    assert found["flagged"] <= 5, found["examples"]


# --- specific cases ---------------------------------------------------------------------------

def categories(text):
    return {(text[f.start:f.end], f.category) for f in find_phi_spans(text)}


@pytest.mark.parametrize("text, expected", [
    ("Badanie wykonano u Anny Kowalskiej.", "Anny Kowalskiej"),
    ("Przekazano informację Kowalskiemu.", "Kowalskiemu"),
    ("Wypis wydano Nowakowi.", "Nowakowi"),
    ("Zalecenia przekazano pani Nowak.", "Nowak"),
    ("Seen by dr. Smith today.", "Smith"),
    ("Córka Ewa poinformowana.", "Ewa"),
    ("Rozmowa z mężem pacjentki, Andrzejem.", "Andrzejem"),
    ("Pani Brzęczyszczykiewicz zgłosiła się.", "Brzęczyszczykiewicz"),   # on no list: the title
    ("Opis: lek. M. Kowalczyk.", "M. Kowalczyk"),
    ("Mrs O'Connor was counselled.", "O'Connor"),
    ("His son, David, will collect him.", "David"),
])
def test_names_in_context_and_inflection(text, expected):
    assert (expected, "NAME") in categories(text)


@pytest.mark.parametrize("text", [
    "Choroba Parkinsona, chłoniak Hodgkina, zespół Downa.",
    "Choroba Gravesa-Basedowa, choroba Leśniowskiego-Crohna.",
    "Torbiel Bakera 32 x 14 mm, złamanie Collesa, przełyk Barretta.",
    "Objaw Chełmońskiego dodatni, objaw Goldflama ujemny.",
    "Parkinson's disease, Hodgkin lymphoma, non-Hodgkin lymphoma, Graves' disease.",
    "Baker's cyst, Smith's fracture, Murphy's sign, pouch of Douglas, circle of Willis.",
    "Bosniak IIF cyst, Gleason 3+4=7, Weber B fracture, Hill-Sachs lesion.",
    "Sister Mary Joseph nodule at the umbilicus.",
    "Ward round: plan discussed. May require a repeat scan. Will review.",
])
def test_clinical_eponyms_and_ordinary_words_are_kept(text):
    assert find_phi_spans(text) == []


def test_eponym_surname_with_a_title_is_still_a_name():
    found = categories("Mrs Parkinson does not have Parkinson's disease.")
    assert found == {("Parkinson", "NAME")}


@pytest.mark.parametrize("text, value, category", [
    ("PESEL 58022248005.", "58022248005", "NATIONAL_ID"),
    ("Pacjent 30121522004 zgłosił się.", "30121522004", "NATIONAL_ID"),   # checksum, no cue
    ("tel. 601 234 567", "601 234 567", "PHONE"),
    ("dzwonić +48 512-345-678 po 16", "+48 512-345-678", "PHONE"),
    ("call +44 20 7946 0958", "+44 20 7946 0958", "PHONE"),
    ("(71) 343 55 20 sekretariat", "(71) 343 55 20", "PHONE"),
    ("mail: ewa.nowak@gmail.com", "ewa.nowak@gmail.com", "EMAIL"),
    ("50-123 Wrocław", "50-123", "POSTAL_CODE"),
    ("mieszka przy ul. Lipowa 12/4", "ul. Lipowa 12/4", "ADDRESS"),
    ("lives at 12 Baker Street", "12 Baker Street", "ADDRESS"),
    ("z dnia 12.03.2021", "12.03.2021", "DATE"),
    ("od 14 lutego 2022 r.", "14 lutego 2022 r.", "DATE"),
    ("on 3rd March 2023", "3rd March 2023", "DATE"),
    ("w 2015 r.", "2015", "DATE"),
    ("94-letnia pacjentka", "94-letnia", "AGE"),
    ("dowód osobisty IKX347485", "IKX347485", "ID"),
    ("NHS number 488 594 5267", "488 594 5267", "ID"),
])
def test_patterns(text, value, category):
    assert (value, category) in categories(text)


@pytest.mark.parametrize("text", [
    "Nr próbki 20230415123, materiał: krew żylna.",      # 11 digits, no PESEL checksum
    "Próbka nr 75110181496 odrzucona - hemoliza.",       # a PESEL with one digit changed
    "Hb 11,2 g/dl, WBC 12,5 tys./µl, PLT 250 000/µl.",
    "Guz 34 x 28 x 25 mm, RR 140/90 mmHg, VAS 7/10.",
    "Protruzja L4/L5, zmiany C5/C6, Apgar 9/10/10.",
    "Nr zlecenia 4471-2023/LAB, nr badania 2024/03/0157.",
    "72-letni mężczyzna, 89-year-old woman.",
    "Dawka 2000 mg, diureza 1800 ml/dobę, godz. 14:15.",
])
def test_numbers_that_are_not_phi(text):
    assert find_phi_spans(text) == []


def test_checksums():
    assert valid_pesel("44051401359") and not valid_pesel("44051401358")
    assert not valid_pesel("44133101350")           # month 13 of the 1900s: no such date
    assert valid_idcard("IKX347485") and not valid_idcard("IKX347486")
    assert valid_nhs("4885945267") and not valid_nhs("4885945268")
    assert [c for c in range(10) if valid_passport(f"AB{c}123456")] == [4]  # one check digit
    assert valid_phone("601 234 567") and not valid_phone("250 000")


def test_inflect_generates_polish_case_forms():
    assert {"anny", "annie", "annę", "anną"} <= inflect("Anna")
    assert {"kowalskiej", "kowalską", "kowalskiego", "kowalskiemu", "kowalscy"} <= \
        inflect("Kowalski")
    assert {"nowaka", "nowakowi", "nowakiem", "nowakowie", "nowakowa"} <= inflect("Nowak")
    assert {"marka", "markowi", "markiem"} <= inflect("Marek")
    assert {"pawła", "pawle"} <= inflect("Paweł")
    assert {"małgorzacie", "agnieszce", "jadwidze", "marii"} <= \
        inflect("Małgorzata") | inflect("Agnieszka") | inflect("Jadwiga") | inflect("Maria")


def test_placeholders_are_never_flagged():
    text = "Wynik omówiono z [NAME], tel. [PHONE], PESEL [NATIONAL_ID], [DATE]."
    assert find_phi_spans(text) == []
    assert redact("Córka Ewa, tel. 601 234 567.", find_phi_spans("Córka Ewa, tel. 601 234 567.")) \
        == "Córka [NAME], tel. [PHONE]."


# --- the hospital's screen: the patient's own identifiers and the policy ----------------------

PATIENT = {"first_name": "Bożydar", "last_name": "Grzegżółka", "national_id": "57030412345",
           "mrn": "MRN0481516", "phone": "+48 601 234 567", "street": "ul. Lipowa 12/4",
           "postal_code": "50-123", "birth_date": "1957-03-04"}


def test_own_identifiers_including_inflected_names_not_on_any_list():
    text = "Informację przekazano Bożydarowi Grzegżółce; PESEL 570304 12345, MRN0481516."
    found = {text[f.start:f.end] for f in patient_findings(text, PATIENT)}
    assert {"Bożydarowi", "570304 12345", "MRN0481516"} <= found
    screened = PhiScreen("redact").apply(text, PATIENT).text
    assert "Bożydar" not in screened and "Grzegż" not in screened and "12345" not in screened
    assert screened.startswith("Informację przekazano [NAME];")


def test_scrub_text_keeps_whole_words_only():
    assert scrub_text("Lipowa 12/4, January follow-up in Janowice.",
                      {"first_name": "Jan", "street": "ul. Lipowa 12/4"}) == \
        "[ADDRESS], January follow-up in Janowice."


def test_refuse_policy_raises_with_categories_only():
    with pytest.raises(PhiRefused) as refused:
        PhiScreen("refuse").apply("Córka Ewa, tel. 601 234 567.", PATIENT)
    assert refused.value.categories == ["NAME", "PHONE"]
    assert "Ewa" not in str(refused.value) and "601" not in str(refused.value)
    assert PhiScreen("refuse").apply("RTG klatki piersiowej: bez zmian.", PATIENT).findings == ()


def test_screen_is_fast(lines):
    from benchmarks.phi_screen.score import timing
    from hl7_gateway.text_phi import default_screen
    assert timing(lines, default_screen(), passes=1) < 2000   # µs per line, generous bound
