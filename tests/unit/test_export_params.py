"""Export job Params: exactly one selection, criteria validated like /api/search, pseudonyms clean."""
import pytest
from pydantic import ValidationError

from analytics_jobs.export.params import Params


def test_criteria_normalised_and_paging_dropped():
    p = Params(criteria={"icd10": " C50 ", "sex": "F", "page": 3, "per_page": 50, "sort": "age"})
    assert p.criteria == {"icd10": "C50", "sex": "F"}
    assert p.selection() == {"criteria": {"icd10": "C50", "sex": "F"}}
    assert p.case_query().icd10 == "C50"
    assert (p.dicom, p.visits, p.nifti) == (True, True, True)


def test_pseudonyms_deduplicated_uppercased():
    p = Params(pseudonyms=["rsabcdefgh234567ab", "RSABCDEFGH234567AB", " RS2222333344445555 ", ""])
    assert p.pseudonyms == ["RSABCDEFGH234567AB", "RS2222333344445555"]
    assert p.case_query() is None
    assert p.selection() == {"pseudonyms": p.pseudonyms}


@pytest.mark.parametrize("kw, message", [
    ({}, "exactly one"),
    ({"criteria": {"icd10": "C50"}, "pseudonyms": ["RSAAAABBBBCCCCDDDD"]}, "exactly one"),
    ({"criteria": {}}, "at least one criterion"),
    ({"criteria": {"page": 2}}, "at least one criterion"),
    ({"criteria": {"age_min": 80, "age_max": 20}}, "age_min"),
    ({"criteria": {"sex": "X"}}, "sex"),
    ({"criteria": {"bogus": 1}}, "bogus"),
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
