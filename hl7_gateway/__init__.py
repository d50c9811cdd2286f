"""HL7 v3 side of pacs-mdc: visit models, hardened parser, builder, acknowledgements (MDC
gateway), and the hospital-side pieces (HIS export, de-identification, visit-id crypto, link
table). The wire format is described in INTERACTION.md."""
