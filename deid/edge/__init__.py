"""The hospital edge (`pacs edge`): the hospital-side service every image passes through.

A modality C-STOREs to the edge's DICOM SCP (`scp`). Each object is parsed, validated,
de-identified with the hospital vault's keys and written to a durable local spool (`receive`,
`spool`, `durable`) before the modality hears success. Objects that may carry burned-in PHI are
held in a local quarantine until a person releases them (`quarantine`, `review`). A forwarder
process ships the spool to the data center (MDC) as DICOMweb STOW-RS over HTTPS with mutual
TLS (`stow`, `forwarder`, `forwarding`) and deletes an object only once the MDC acknowledged it. `status`
reads what the running edge wrote (`state`) plus the folders, so it works from another process.

Nothing in this package is imported by data-center code: it opens the vault. See README.md.
"""
