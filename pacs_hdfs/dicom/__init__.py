"""The DICOM SCP of the data center: Verification, Storage (with de-identification before any
byte is stored) and Query/Retrieve answered from HBase over the de-identified attributes.

Modules: `config` (PACS_SCP_* settings), `vault_access` (the hospital-side key vault),
`ingest` (received bytes -> validate -> deid -> commit -> status), `validation` (what is
refused or warned at ingest), `commit` (group commit: verified batch files, then HBase rows),
`stored` (the verified read), `compaction` (merge batch files, reclaim orphans), `index_rows`
(which attributes each level indexes), `matching` (C-FIND matching, pure), `query`
(Q/R over HBase), `quarantine` (list/release/reject), `server` (the pynetdicom AE and its
handlers), `runner` (wiring + logging for `pacs scp`), `personalise` (hospital-side
re-identification of a stored study), `synthetic` (generated CT series with invented PHI for
tests and benchmarks).

MDC ingest over DICOMweb STOW-RS (hospital edges, mutual TLS, served by the gateway): `stow`
(the routes: edge identity, streamed body, one group commit per request), `edge_identity`
(which edge a client certificate names), `multipart` (multipart/related parsing, pure),
`received` (one object: Part 10 read, `validation.check`, `deid.verify` -> accepted or refused),
`stow_response` (per-instance results -> HTTP status and dicom+json).
"""
