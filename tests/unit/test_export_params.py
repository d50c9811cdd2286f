"""Export job Params: pseudonyms required (criteria alone refused), criteria validated like
/api/search, pseudonyms clean."""
import pytest
from pydantic import ValidationError

from analytics_jobs.export.params import Params


CASE = "RSAAAABBBBCCCCDDDD"


def test_criteria_normalised_and_paging_dropped():
    p = Params(criteria={"icd10": " C50 ", "sex": "F", "page": 3, "per_page": 50, "sort": "age"},
               pseudonyms=[CASE])
    assert p.criteria == {"icd10": "C50", "sex": "F"}
    assert p.selection() == {"criteria": {"icd10": "C50", "sex": "F"},
                             "resolved": "by the portal's case index when the export was "
                                         "submitted", "pseudonyms": [CASE]}
    assert p.case_query().icd10 == "C50"
    assert (p.dicom, p.visits, p.nifti) == (True, True, True)


def test_cli_text_forms():
    """`pacs job submit export --pseudonyms a,b --criteria '{...}'` gives strings."""
    p = Params(pseudonyms=f"{CASE}, rs2222333344445555", criteria='{"icd10": "C50"}')
    assert p.pseudonyms == [CASE, "RS2222333344445555"] and p.criteria == {"icd10": "C50"}


def test_pseudonyms_deduplicated_uppercased():
    p = Params(pseudonyms=["rsabcdefgh234567ab", "RSABCDEFGH234567AB", " RS2222333344445555 ", ""])
    assert p.pseudonyms == ["RSABCDEFGH234567AB", "RS2222333344445555"]
    assert p.case_query() is None
    assert p.selection() == {"pseudonyms": p.pseudonyms}


@pytest.mark.parametrize("kw, message", [
    ({}, "give the case pseudonyms"),
    ({"criteria": {"icd10": "C50"}}, "Export this search"),
    ({"criteria": "{not json", "pseudonyms": [CASE]}, "not a JSON object"),
    ({"criteria": {}, "pseudonyms": [CASE]}, "at least one criterion"),
    ({"criteria": {"page": 2}, "pseudonyms": [CASE]}, "at least one criterion"),
    ({"criteria": {"age_min": 80, "age_max": 20}, "pseudonyms": [CASE]}, "age_min"),
    ({"criteria": {"sex": "X"}, "pseudonyms": [CASE]}, "sex"),
    ({"criteria": {"bogus": 1}, "pseudonyms": [CASE]}, "bogus"),
    ({"pseudonyms": []}, "empty"),
    ({"pseudonyms": ["../../etc"]}, "malformed"),
    ({"pseudonyms": ["RS ABC"]}, "malformed"),
    ({"pseudonyms": ["RSAAAABBBBCCCCDDDD", "RSAAAABBBBCCCCDDDE"], "max_cases": 1}, "max_cases"),
    ({"pseudonyms": ["RSAAAABBBBCCCCDDDD"], "dicom": False, "visits": False, "nifti": False},
     "nothing to export"),
    ({"pseudonyms": ["RSAAAABBBBCCCCDDDD"], "extra": 1}, "extra"),
])
def test_rejected(kw, message):
    with pytest.raises(ValidationError, match=message):
        Params(**kw)
