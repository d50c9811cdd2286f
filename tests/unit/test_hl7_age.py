"""Age top-coding (issue 14): 90 means "90 or more" in the Visit, HBase, Parquet, the portal's
display and search, and the ICD-10 age groups."""
from datetime import datetime

from hl7_gateway.hospital.samples import sample_visit
from hl7_gateway.models import AGE_TOP, Visit, age_label
from hl7_gateway.store_rows import search_document, visit_row
from hl7_gateway.visit_row import visit_to_row
from pacs_hdfs.containers import Location
from pacs_hdfs.visit_schema import VISIT_SCHEMA
from portal.search.query import top_coded_range


def test_visit_top_codes_and_never_carries_a_birth_year():
    visit = sample_visit(age=104)
    assert visit.age == AGE_TOP == 90
    assert age_label(visit.age) == "90+" and age_label(89) == "89" and age_label(None) == ""
    assert "birth_year" not in VISIT_SCHEMA.names and "birth_year" not in visit_to_row(visit)
    row = visit_row(visit, Location("p", 0, 1, "x"), "now", [])
    assert row[b"v:age"] == b"90" and b"v:birth_year" not in row
    assert search_document(visit)["a"] == 90


def test_rows_stored_before_the_change_still_read():
    old = sample_visit().model_dump(mode="json") | {"birth_year": 1957, "age": 97}
    visit = Visit.model_validate(old)
    assert visit.age == 90 and visit.admission == datetime(2024, 3, 1, 8, 15)


def test_portal_age_search_reaches_the_top_code():
    assert top_coded_range(95, 130) == (90, 130)      # a 95-year-old is stored as 90+
    assert top_coded_range(80, 130) == (80, 130)
    assert top_coded_range(20, 40) == (20, 40)


def test_portal_shows_90_plus():
    from portal.web import templates
    assert templates.env.from_string("{{ a|age }}").render(a=90) == "90+"
