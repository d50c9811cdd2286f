"""The `pacs` command tree and its composition root (`pacs_cli.main`).

The only package that imports every area and `deploy`: the layers are storage core (`pacs_hdfs`)
<- areas (`deid`, `hl7_gateway`, `analytics_jobs`, `recon_mapreduce`, `portal`, `deploy`) <- this,
kept by the import-linter contract in pyproject.toml. Each area registers its own commands on
the shared groups of `pacs_hdfs.cli_apps` when `main` imports its cli module.
"""
