"""ICD-10 statistics over the de-identified visit Parquet (see ``pacs_hdfs.visit_schema``).

- :mod:`.hierarchy`  chapter/block/category/description specs -> cheap code filters
- :mod:`.period`     which visits fall into a period, equal sub-periods
- :mod:`.analyses`   the five analyses as pure PySpark DataFrame functions
- :mod:`.duckdb_sql` the same five analyses as independent DuckDB SQL (cross-check, benchmark)
- :mod:`.report`     the engine-neutral result dicts and their written definitions
- :mod:`.generator`  a synthetic visit dataset at scale, hive-partitioned by ``visit_month``
"""
from .hierarchy import CodeSelection, resolve_codes
from .period import Period

__all__ = ["CodeSelection", "Period", "resolve_codes"]
