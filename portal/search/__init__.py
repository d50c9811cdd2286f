"""Case search: a columnar index of the visits, fed from HBase, shared by the portal processes.

The HL7 gateway writes one ``search`` feed row per stored visit (``hl7_gateway.store_rows``).
One indexer (a portal process holding the index's writer lock, or `pacs search index`) tails
those rows into ``CaseIndex`` segments kept as files on local disk; every portal process maps
them read-only and answers searches from the shared page cache (issue 20; the measured
alternatives, Tantivy and DuckDB, are in benchmarks/portal/RESULTS.md).

| module | does |
|---|---|
| `text.py` | the tokenizer and code normalisation shared by indexing and querying |
| `segment.py` | one immutable block of visits: columns, postings, tombstones |
| `index.py` | `CaseIndex`: vocabularies, patients, segments, `search(query)` -> a page of cases |
| `query.py` | `CaseQuery` (validated parameters) and term resolution (ICD-10/ICD-9 descriptions) |
| `mapped.py` | the shared index: segments on disk, `MappedIndexer` (one writer), `MappedIndex` (readers) |
| `service.py` | `SharedSearch`: the portal's handle (becomes the indexer when none runs; reads) |
| `feed.py` | HBase feed tailing; `LiveIndex`, the private in-memory index (tests, in-memory stores) |
| `rebuild.py` | `pacs search rebuild`: the Spark job kind and the swap of a rebuilt index |
"""
