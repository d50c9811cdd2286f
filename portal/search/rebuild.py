"""A full rebuild of the shared case index from the stored visits (issue 20, item 2).

1. The Spark job kind ``search-rebuild`` reads the visit Parquet (``visits/parquet``, the latest
   file's row of each visit, as ``visit_parquet`` defines), turns every visit into the search
   document the gateway's feed carries (``hl7_gateway.store_rows.search_document``, here in
   Spark SQL) and writes them as JSON lines under ``jobs/<id>/documents/``.
2. ``pacs search rebuild`` waits for it, builds a new index directory from those documents
   (``MappedIndexer``, large batches), asks the running indexer to let go (a ``release`` file
   in the live directory), takes the writer lock, catches the new index up with the feed and
   swaps the directories. Readers see a new ``epoch`` in the manifest and reopen.

Rebuilt visits count as received one minute before the job started, so a feed row written
since (a re-sent visit) still wins, and the feed is re-read from there.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from pydantic import BaseModel, Field

from portal.search import feed
from portal.search.mapped import LOCK, MappedIndexer

SOURCE = "visits/parquet"
MARGIN_MS = 60_000
BATCH = 200_000
RELEASE = "release"       # in the live index directory: the indexer closes and waits

# search_document(visit) in Spark SQL, over VISIT_SCHEMA columns
DOCUMENT_SQL = {
    "v": "visit_id", "p": "patient_id", "s": "sex", "a": "age",
    "d": "date_format(admission, 'yyyy-MM-dd')", "c": "coalesce(city, '')",
    "x10": "transform(filter(diagnoses, x -> x.system = 'ICD10'), x -> x.code)",
    "x9": "transform(filter(diagnoses, x -> x.system = 'ICD9CM'), "
          "x -> array(x.code, coalesce(x.display, '')))",
    "t": "array_join(transform(filter(exams, e -> e.text IS NOT NULL AND e.text != ''), "
         "e -> e.text), '\\n')",
    "k": "array_sort(array_distinct(transform(exams, e -> e.kind)))",
}


class Params(BaseModel):
    source: str = Field(SOURCE, description="visit Parquet root on HDFS")
    received_ms: int = Field(0, ge=0, description="received time given to every visit "
                             "(default: one minute before the job starts)")


def run(ctx, p: Params) -> dict:
    """Spark: visits -> search documents (JSON lines) under the job's output directory."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window
    received = p.received_ms or int(time.time() * 1000) - MARGIN_MS
    ctx.progress(0.05, "reading visits")
    t0 = time.monotonic()
    root = ctx.hdfs.url(p.source)
    df = ctx.spark.read.option("basePath", root).parquet(root)
    newest = Window.partitionBy("visit_id").orderBy(F.col("_file").desc())
    latest = (df.withColumn("_file", F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1))
              .withColumn("_n", F.row_number().over(newest)).where("_n = 1"))
    docs = latest.select(*[F.expr(sql).alias(name) for name, sql in DOCUMENT_SQL.items()])
    out = f"{ctx.output_dir}/documents"
    ctx.progress(0.2, "writing search documents")
    docs.write.mode("overwrite").json(ctx.hdfs.url(out))
    count = ctx.spark.read.json(ctx.hdfs.url(out)).count()
    return {"visits": count, "documents": out, "received_ms": received,
            "spark_seconds": round(time.monotonic() - t0, 1)}


JOB_KINDS = {"search-rebuild": (Params, run)}


def read_documents(hdfs, directory: str, received: int, batch: int = BATCH):
    """(received, document) batches from the job's JSON-lines part files."""
    out = []
    for name in sorted(hdfs.list(directory)):
        if not name.startswith("part-"):
            continue
        for line in hdfs.read(f"{directory}/{name}").splitlines():
            if line.strip():
                doc = json.loads(line)
                doc.setdefault("x10", [])
                doc.setdefault("x9", [])
                doc.setdefault("k", [])
                doc.setdefault("t", "")
                out.append((received, doc))
                if len(out) >= batch:
                    yield out
                    out = []
    if out:
        yield out


def build(directory: Path, batches) -> MappedIndexer:
    """A new index in ``directory`` (which must not exist) from (received, doc) batches."""
    if directory.exists():
        shutil.rmtree(directory)
    writer = MappedIndexer(directory)
    for docs in batches:
        writer.apply(docs)
    return writer


def swap(live: Path, fresh: MappedIndexer, hbase, wait_s: float = 60.0) -> dict:
    """Replace the live index directory by ``fresh``'s (caught up with the feed first) while
    holding the live writer lock, so no indexer writes either meanwhile."""
    live.mkdir(parents=True, exist_ok=True)
    release = live / RELEASE
    release.write_text(str(os.getpid()))
    lock = (live / LOCK).open("a")
    old = None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the indexer did not release {live} in {wait_s} s")
                time.sleep(0.2)
        tail = feed.catch_up(fresh, hbase)
        fresh.close()
        old = live.with_name(f"{live.name}.old-{time.time_ns()}")
        os.rename(live, old)
        os.rename(fresh.dir, live)
    finally:
        lock.close()
        if old is None:
            release.unlink(missing_ok=True)      # not swapped: the indexer may go on
    shutil.rmtree(old, ignore_errors=True)
    return {"tail_visits": tail, "position": fresh.position}
