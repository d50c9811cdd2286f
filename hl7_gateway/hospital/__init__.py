"""Hospital side of the HL7 path (HAS): reads the HIS export with full PHI, de-identifies visits
(pseudonyms, AES-SIV visit ids, PHI screening), keeps the HIS-MDC link table and the keys, and
talks to the MDC gateway over HTTPS with mutual TLS. Runs only at the hospital; no data-center
module imports this package (an import-linter contract in `make test` checks it)."""
