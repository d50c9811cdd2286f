"""The HDFS layout and the HBase schema, as data. `pacs init` creates both, idempotently.

HDFS layout (under `Settings.hdfs_root`, default `/pacs`):

| dir | holds |
|---|---|
| `dicom/containers/<study>/<series>/` | per-series batch files `<writer>-<n>.pack` (one per commit, immutable, with a manifest footer; see `containers.py`), merged into larger ones by compaction: de-identified DICOM objects back to back; HBase indexes each (path, offset, length, sha256) |
| `hl7/archive/<yyyy-mm-dd>/` | daily containers of raw (de-identified) HL7 v3 XML |
| `visits/parquet/visit_month=YYYY-MM/` | visits for Spark, partitioned by admission month |
| `jobs/<job-id>/` | job results (JSON, charts, volumes, Parquet) |
| `recon/projections/` | simulated or uploaded cone-beam projections |
| `tmp/` | scratch |

HBase tables (all prefixed `<hbase_table_prefix>_`; Thrift 1 cannot create namespaces, so a prefix
stands in for one). Row keys avoid hot-spotting by leading with UIDs (`2.25.<128-bit hash>` after
de-identification, so uniformly spread) or with a hash salt. Families are few and short-named:
HBase stores the family name in every cell.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    families: dict[str, dict]
    row_key: str        # how the row key is built
    purpose: str


HDFS_DIRS = (
    "dicom/containers",
    "hl7/archive",
    "visits/parquet",
    "jobs",
    "recon/projections",
    "tmp",
)

SEP = "\x00"  # joins the parts of composite row keys; never occurs inside a UID

TABLES = (
    Table("instance", {"l": {"max_versions": 1}, "a": {"max_versions": 1}},
          "study_uid \\0 series_uid \\0 sop_uid",
          "one row per stored object: l = location (path, offset, length, sha256, "
          "transfer syntax); a = de-identified attributes used by Q/R and the viewer"),
    Table("sop", {"r": {"max_versions": 1}},
          "sop_uid",
          "SOP Instance UID -> instance row key (IMAGE-level retrieve, idempotent re-send)"),
    Table("series", {"a": {"max_versions": 1}, "c": {"max_versions": 1}},
          "study_uid \\0 series_uid",
          "series attributes (a) and counters (c: instances, bytes)"),
    Table("study", {"a": {"max_versions": 1}, "c": {"max_versions": 1}},
          "study_uid",
          "study attributes incl. pseudonymous patient id and accession (a), counters (c)"),
    Table("subject", {"a": {"max_versions": 1}, "s": {"max_versions": 1},
                      "v": {"max_versions": 1}},
          "pseudonymous patient id",
          "research subject: attributes (a), its studies (s:<study_uid>), its visits (v:<visit_id>)"),
    Table("visit", {"v": {"max_versions": 1}},
          "encrypted visit id",
          "one visit as JSON (v:json) plus flat columns the portal shows"),
    Table("search", {"i": {"max_versions": 1}},
          "kind \\0 value \\0 pseudonymous patient id \\0 encrypted visit id; kinds: "
          "'icd10' (value = ICD-10 category, e.g. C50), 'accession' (de-identified accession); "
          "and 'study-accession' \\0 accession \\0 study_uid",
          "visit search index written by the HL7 gateway: prefix-scan 'icd10\\0C50\\0' for the "
          "visits (and patients) with a diagnosis in C50; i: = admission, code, sex, age. "
          "DICOM ingest adds 'study-accession' rows (i:s) when it writes a study row, so the "
          "viewer resolves an accession to its study by a prefix scan"),
    Table("quarantine", {"q": {"max_versions": 1}},
          "sop_uid",
          "objects held back for burned-in PHI review: reason, state, instance row key"),
    Table("jobs", {"j": {"max_versions": 1}},
          "job id (time-ordered)",
          "job service: kind, parameters, state, progress, result paths"),
    Table("audit", {"e": {"max_versions": 1}},
          "reverse timestamp \\0 random",
          "append-only audit trail: who viewed/downloaded/launched what, when"),
    Table("users", {"u": {"max_versions": 1},
                    "s": {"max_versions": 1, "time_to_live": 12 * 3600}},
          "'u/' + user name, or 's/' + sha256(session token)",
          "portal users (u: role, argon2 hash, created) and server-side sessions "
          "(s: user, csrf token, expiry; HBase drops them after 12 h)"),
    Table("schema", {"v": {"max_versions": 1}},
          "'version'",
          "the archive's schema version (v:version, v:code, v:at), mirrored in "
          "SCHEMA_VERSION.json on the HDFS root; see schema_version.py"),
)


def table_name(prefix: str, short: str) -> str:
    return f"{prefix}_{short}"


def row_key(*parts: str) -> bytes:
    return SEP.join(parts).encode()
