"""ICD-10 hierarchy specs -> category ranges and prefixes; Python, SQL and Spark-free checks."""
import duckdb
import pytest

from analytics_jobs.icd10.hierarchy import CodeSelection, resolve_codes


@pytest.mark.parametrize("spec, ranges", [
    ("II", (("C00", "D48"),)),            # chapter by roman numeral
    ("C00-D48", (("C00", "D48"),)),       # chapter by range
    ("C00-C14", (("C00", "C14"),)),       # block
    ("C50-C50", (("C50", "C50"),)),       # one-category block
    ("C50", (("C50", "C50"),)),           # category
    ("c50", (("C50", "C50"),)),           # case-insensitive code
])
def test_chapter_block_category_become_one_range(spec, ranges):
    selection = resolve_codes([spec])
    assert selection.ranges == ranges and selection.prefixes == ()


def test_subcategory_with_or_without_dot_is_a_prefix():
    assert resolve_codes(["C50.9"]) == resolve_codes(["C509"]) == CodeSelection(prefixes=("C50.9",))


def test_all_subcodes_collapse_into_category_and_neighbours_merge():
    subcodes = [f"C50.{d}" for d in "012345689"]
    assert resolve_codes(subcodes).ranges == (("C50", "C50"),)
    # C50 and C51 are consecutive WHO categories: one range; C50.9 is covered, no prefix left
    assert resolve_codes(["C51", "C50", "C50.9"]) == CodeSelection(ranges=(("C50", "C51"),))


def test_description_search_is_case_insensitive_and_follows_hierarchy():
    selection = resolve_codes(["BREAST"])
    assert selection == resolve_codes(["text:breast"])
    assert ("C50", "C50") in selection.ranges                      # "Malignant neoplasm of breast"
    assert selection.matches("C50.4") and selection.matches("D05.1")
    assert not selection.matches("C34.9") and not selection.matches(None)


def test_unknown_spec_is_an_error():
    with pytest.raises(ValueError):
        resolve_codes(["no such disease xyz"])


def test_range_admits_codes_between_who_categories():
    neoplasms = resolve_codes(["II"])
    assert neoplasms.matches("C4A.0") and neoplasms.matches("D48.9")
    assert not neoplasms.matches("D50.0") and not neoplasms.matches("B99")


CODES = ["C00.0", "C50", "C50.9", "C509", "D05.1", "D48.9", "D50.0", "E11.9", "E10", "I10", "O24.4",
         "J18.9", "Z99.9", "", None]


@pytest.mark.parametrize("specs", [["II"], ["breast"], ["C50.9", "E11"], ["diabetes"], ["Z99"]])
def test_sql_predicate_agrees_with_python(specs):
    selection = resolve_codes(specs)
    con = duckdb.connect()
    rows = con.execute(f"SELECT c, coalesce({selection.sql_predicate('c')}, FALSE) "
                       "FROM unnest(?::VARCHAR[]) AS t(c)", [CODES]).fetchall()
    assert {c: hit for c, hit in rows} == {c: selection.matches(c) for c in CODES}
    listed = con.execute(f"SELECT {selection.duckdb_list_predicate('l')} FROM (SELECT ?::VARCHAR[] AS l)",
                         [CODES]).fetchone()[0]
    assert listed == any(selection.matches(c) for c in CODES)


def test_empty_selection_matches_nothing():
    assert CodeSelection().is_empty and CodeSelection().sql_predicate() == "FALSE"
