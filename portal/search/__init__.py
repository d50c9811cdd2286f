"""Case search: an in-memory columnar index of the visits, fed from HBase.

The HL7 gateway writes one ``search`` feed row per stored visit (``hl7_gateway.store_rows``).
The portal tails those rows into a ``CaseIndex`` (numpy columns + inverted postings, kept as a
few immutable segments that are merged in the background) and answers searches from memory; a
snapshot of the merged index is kept in HDFS so a restart does not replay every feed row.

| module | does |
|---|---|
| `text.py` | the tokenizer and code normalisation shared by indexing and querying |
| `segment.py` | one immutable block of visits: columns, postings, tombstones |
| `index.py` | `CaseIndex`: vocabularies, patients, segments, `search(query)` -> a page of cases |
| `query.py` | `CaseQuery` (validated parameters) and term resolution (ICD-10/ICD-9 descriptions) |
| `feed.py` | glue: HBase feed tailing, HDFS snapshots, the background loader |
"""
