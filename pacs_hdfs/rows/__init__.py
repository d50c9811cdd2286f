"""Row codecs: one module per HBase table of `pacs_hdfs/schema.py`, the only place that spells
a column name or builds a row key.

Every writer and reader, in every area, goes through these modules, so the on-disk format is
written down once and a package never parses another package's rows by hand. Each module holds
its table's row key builder/parser, its column names as named constants (the column table as
data) and small encode (values -> {column: bytes}) / decode ({column: bytes} -> values)
functions. The modules are pure (no client, no I/O) and import nothing from the areas, so
every area may use them.

| module | table |
|---|---|
| `instance` | one row per stored DICOM object: location (l:) and attributes (a:) |
| `sop` | SOP Instance UID -> instance row key (r:key) |
| `series`, `study` | series/study attributes (a:) and counters (c:) |
| `subject` | research subject: attributes (a:), studies (s:), visits (v:) |
| `visit` | one HL7 visit (v:) |
| `search` | the visit search index, feed rows and study-accession rows (i:) |
| `quarantine` | objects held back for review (q:) |
| `jobs` | job records, queue markers, runner heartbeats (j:) |
| `audit` | the audit trail (e:) |
| `users` | portal users (u:), sessions and sign-in throttle counters (s:) |
| `schema` | the archive's schema version (v:) |
| `health_probe` | the health check's own probe table (h:), outside the schema |

Shared cell encodings are in `cells`; the DICOM attribute columns (a:<keyword>) that the
instance, series, study and subject tables share are in `attributes`.
"""
