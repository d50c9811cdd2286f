"""The health check's probe table (deploy/health.py), outside the archive's schema.

`pacs cluster status` writes one cell and reads it back to prove a region serves writes:
row `probe`, column `h:t` = b"1".
"""
from __future__ import annotations

FAMILIES = {"h": {"max_versions": 1}}
ROW = b"probe"
COLUMN = b"h:t"
VALUE = b"1"
