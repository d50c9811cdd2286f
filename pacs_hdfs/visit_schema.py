"""The de-identified visit record as stored in Parquet on HDFS (and read by the Spark jobs).

One row per visit. The HL7 gateway writes it, the ICD-10 jobs read it, DuckDB cross-checks it.
Partitioned on HDFS by ``visit_month`` (``YYYY-MM`` of the admission), so a period filter prunes
whole directories. No field may carry a direct identifier: ``visit_id`` is the AES-SIV encrypted
hospital visit id (base64url), ``patient_id`` the keyed pseudonym shared with the DICOM side.

Conventions every producer and consumer relies on:
- timestamps are naive local hospital time, microsecond precision;
- ``discharge`` is null while the patient is still admitted;
- ``sex`` is the HL7 AdministrativeGender code: ``M``, ``F`` or ``UN`` (unknown);
- ``age`` is whole years at admission, top-coded: 90 means "90 or more" (shown as "90+"); no
  birth year or birth date is stored;
- ``admission``/``discharge`` are the hospital's dates after its date policy: by default
  (``deid_date_policy = "shift"``) moved earlier by a secret per-patient offset of 1 to 3650 days,
  the same offset as that patient's DICOM dates, so intervals within a patient are exact but
  calendar dates are not (``visit_month`` is the shifted month);
- diagnosis ``system`` is ``ICD10`` (OID 2.16.840.1.113883.6.3) or ``ICD9CM``
  (2.16.840.1.113883.6.103); ICD-10 codes are WHO style with a dot (``C50.9``);
- ``icd10`` repeats the visit's ICD-10 codes as a plain list so jobs filter without exploding
  structs;
- lab ``interpretation`` is the HL7 ObservationInterpretation code (``H``, ``L``, ``N``, ``A``,
  ``HH``, ``LL``, ...); abnormal means anything but ``N``.
"""
from __future__ import annotations

import pyarrow as pa

DIAGNOSIS = pa.struct([
    ("system", pa.string()),
    ("code", pa.string()),
    ("display", pa.string()),
    ("primary", pa.bool_()),
])

LAB = pa.struct([
    ("code", pa.string()),
    ("name", pa.string()),
    ("value", pa.float64()),
    ("unit", pa.string()),
    ("low", pa.float64()),
    ("high", pa.float64()),
    ("interpretation", pa.string()),
])

EXAM = pa.struct([
    ("kind", pa.string()),        # e.g. CT, RTG, MORPHOLOGY
    ("accession", pa.string()),   # links to a DICOM study's AccessionNumber (may be null)
    ("text", pa.string()),        # de-identified free-text result
])

VISIT_SCHEMA = pa.schema([
    ("visit_id", pa.string()),
    ("patient_id", pa.string()),
    ("sex", pa.string()),
    ("age", pa.int16()),           # 90 = "90 or more"
    ("city", pa.string()),
    ("admission", pa.timestamp("us")),
    ("discharge", pa.timestamp("us")),
    ("diagnoses", pa.list_(DIAGNOSIS)),
    ("icd10", pa.list_(pa.string())),
    ("labs", pa.list_(LAB)),
    ("exams", pa.list_(EXAM)),
    ("visit_month", pa.string()),
])

PARTITION_COLUMN = "visit_month"
