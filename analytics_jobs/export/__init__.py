"""Cohort export (issue 18 item 1): a search or a list of case pseudonyms -> one zip on HDFS
with de-identified DICOM, visits (CSV + Parquet), NIfTI volumes, a manifest and a README.

The modules here are pure kernels (no Spark, no clients); see README.md for what is left."""
