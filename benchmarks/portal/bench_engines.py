"""Case search engines side by side (issue 20): today's in-memory ``CaseIndex``, Tantivy
(``tantivy_engine.py``), DuckDB (one database file) and the chosen memory-mapped ``CaseIndex``
segments (``portal.search.mapped``) on the SAME synthetic visits (``bench_search.documents``),
without HBase or HTTP in the way.

For each engine: build time, size on disk, then a separate querying process (so its RSS is its
own) that opens the index and answers the 10 query shapes of ``bench_search.QUERIES`` for
``--rounds`` rounds; totals, visits matched and the first page must equal ``CaseIndex``'s.

    .venv/bin/python benchmarks/portal/bench_engines.py [--visits 1000000 --patients 100000]

Everything is written under a temporary directory that is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from benchmarks.portal.bench_search import QUERIES, documents, pct  # noqa: E402
from portal.search import text  # noqa: E402
from portal.search.index import SEXES, CaseIndex, Vocab  # noqa: E402
from portal.search.mapped import MappedIndex, MappedIndexer  # noqa: E402
from portal.search.query import CaseQuery, resolve  # noqa: E402


def proc_mem() -> dict:
    """RSS and PSS (shared file pages split between the processes mapping them), MiB."""
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("Rss", "Pss"):
            out[key.lower() + "_mib"] = round(int(line.split()[1]) / 1024)
    return out


def load_avg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# --- rows: one per visit, as an indexer would derive them from the feed documents -------------
def rows(docs: list[dict]) -> dict:
    """Columns for DuckDB and Tantivy, tokenised as ``portal.search.text`` does for CaseIndex."""
    names = sorted({d["p"] for d in docs})
    pid = {p: i for i, p in enumerate(names)}
    cols = {"v": [], "p": [], "s": [], "a": [], "day": [], "city": [], "x10": [], "x9": [],
            "words": [], "k": []}
    display: dict[str, str] = {}
    for d in docs:
        cols["v"].append(d["v"])
        cols["p"].append(pid[d["p"]])
        cols["s"].append(d["s"] if d["s"] in SEXES else "UN")
        cols["a"].append(d["a"])
        cols["day"].append(text.day_number(d["d"]))
        cols["city"].append(d.get("c") or "")
        cols["x10"].append([c.upper() for c in d.get("x10", ())])
        cols["x9"].append([c for c, _ in d.get("x9", ())])
        for c, t in d.get("x9", ()):
            display.setdefault(c, t)
        cols["words"].append(text.words(d.get("t", "")))
        cols["k"].append(list(d.get("k", ())))
    return {"cols": cols, "names": names, "icd9_display": display}


def patient_table(cols: dict, n: int) -> dict[str, np.ndarray]:
    """Per patient: visits, latest day, age at the latest visit (what cases are sorted by)."""
    p = np.array(cols["p"], np.int64)
    day = np.array(cols["day"], np.int32)
    age = np.array(cols["a"], np.int16)
    visits = np.bincount(p, minlength=n).astype(np.int32)
    order = np.lexsort((day, p))               # per patient, the latest day last
    last = np.full(n, -1, np.int64)
    last[p[order]] = order
    return {"visits": visits, "latest": day[last], "age": age[last]}


class Vocabs:
    """What ``query.resolve`` reads from an index: vocabularies and ICD-9 displays."""

    def __init__(self, vocab: dict[str, list[str]], icd9_display: dict[str, str]):
        self.vocab = {f: Vocab(sorted(terms)) for f, terms in vocab.items()}
        self.icd9_display = icd9_display


def criteria_terms(q: CaseQuery, vocabs: Vocabs):
    """The resolved criteria with term strings instead of ids."""
    c = resolve(q, vocabs)
    terms = {f: [[vocabs.vocab[f].terms[i] for i in ids.tolist()] for ids in musts]
             for f, musts in c.terms.items()}
    city = None if c.city is None else [vocabs.vocab["city"].terms[i] for i in c.city.tolist()]
    return c, terms, city


# --- DuckDB ---------------------------------------------------------------------------------
FIELD_COL = {"icd10": "x10", "icd9": "x9", "word": "words", "kind": "k"}
ORDER_SQL = {"latest": "latest", "visits": "n", "age": "age", "patient": "name"}


def duck_build(data: dict, path: Path) -> None:
    import duckdb
    import pyarrow as pa
    cols = data["cols"]
    t = pa.table({"v": cols["v"], "p": pa.array(cols["p"], pa.int32()),
                  "s": cols["s"], "a": pa.array(cols["a"], pa.int16()),
                  "day": pa.array(cols["day"], pa.int32()), "city": cols["city"],
                  "x10": cols["x10"], "x9": cols["x9"], "words": cols["words"], "k": cols["k"]})
    pt = patient_table(cols, len(data["names"]))
    pts = pa.table({"p": pa.array(np.arange(len(data["names"])), pa.int32()),
                    "name": data["names"], **{k: v for k, v in pt.items()}})
    con = duckdb.connect(str(path))
    con.register("t", t)
    con.register("pts", pts)
    con.execute("CREATE TABLE visits AS SELECT * FROM t ORDER BY p")
    con.execute("CREATE TABLE patients AS SELECT * FROM pts ORDER BY p")
    con.execute("CREATE TABLE icd9_display AS SELECT * FROM (VALUES " + ",".join(
        f"('{c}', '{d.replace(chr(39), chr(39) * 2)}')" for c, d in data["icd9_display"].items())
        + ") AS x(code, display)" if data["icd9_display"] else
        "CREATE TABLE icd9_display (code VARCHAR, display VARCHAR)")
    con.close()


class DuckSearch:
    def __init__(self, path: Path):
        import duckdb
        self.con = duckdb.connect(str(path), read_only=True)
        vocab = {f: [r[0] for r in self.con.execute(
            f"SELECT DISTINCT unnest({col}) FROM visits").fetchall()]
            for f, col in FIELD_COL.items()}
        vocab["city"] = [r[0] for r in self.con.execute("SELECT DISTINCT city FROM visits").fetchall()]
        self.vocabs = Vocabs(vocab, dict(self.con.execute("SELECT * FROM icd9_display").fetchall()))

    def where(self, q: CaseQuery) -> tuple[str, list]:
        c, terms, city = criteria_terms(q, self.vocabs)
        sql, args = ["TRUE"], []
        if c.sex is not None:
            sql.append("s = ?")
            args.append(SEXES[c.sex])
        if c.age is not None:
            sql.append("a BETWEEN ? AND ?")
            args += list(c.age)
        if c.days is not None:
            sql.append("day BETWEEN ? AND ?")
            args += list(c.days)
        if city is not None:
            sql.append("list_contains(?, city)")
            args.append(city)
        for f, musts in terms.items():
            for alternatives in musts:
                sql.append(f"list_has_any({FIELD_COL[f]}, ?::VARCHAR[])")
                args.append(alternatives)
        return " AND ".join(sql), args

    def search(self, q: CaseQuery) -> tuple[int, int, list]:
        where, args = self.where(q)
        desc = "DESC" if q.order == "desc" else "ASC"
        rows = self.con.execute(
            f"WITH m AS (SELECT p, count(*) AS n FROM visits WHERE {where} GROUP BY p) "
            f"SELECT pt.name, m.n, count(*) OVER (), sum(m.n) OVER () FROM m JOIN patients pt "
            f"USING (p) ORDER BY {ORDER_SQL[q.sort]} {desc}, pt.name "
            f"LIMIT ? OFFSET ?", args + [q.per_page, (q.page - 1) * q.per_page]).fetchall()
        if not rows:
            total = self.con.execute(
                f"SELECT count(DISTINCT p), count(*) FROM visits WHERE {where}", args).fetchone()
            return int(total[0]), int(total[1]), []
        summaries = self.summaries([r[0] for r in rows], where, args)
        return int(rows[0][2]), int(rows[0][3]), [(r[0], r[1], summaries[r[0]]) for r in rows]

    def summaries(self, names: list[str], where: str, args: list) -> dict:
        got = self.con.execute(
            "SELECT pt.name, count(*), min(day), max(day) FROM visits v JOIN patients pt "
            "USING (p) WHERE pt.name IN (SELECT unnest(?::VARCHAR[])) GROUP BY pt.name",
            [names]).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in got}


# --- indexers fed as the feed is read, and their read-only views --------------------------------
def chunks(docs, size: int = 20_000):
    """(received, document) lists of ``size``, as the indexer reads the feed (no full list)."""
    batch = []
    for i, d in enumerate(docs):
        batch.append((1_000 + i, d))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def indexed(indexer_class):
    def build(docs, path: Path) -> None:
        writer = indexer_class(path)
        for batch in chunks(docs):
            writer.apply(batch)
        writer.close()
    return build


class ViewSearch:
    """Searches a read-only view (``MappedIndex``, Tantivy ``Reader``) as the portal does."""

    def __init__(self, view):
        self.ix = view

    def search(self, q: CaseQuery) -> tuple[int, int, list]:
        self.ix.refresh()
        return summarised(self.ix.search(resolve(q, self.ix), q.sort, q.order == "desc", q.page,
                                         q.per_page))


# --- today's CaseIndex ----------------------------------------------------------------------
def memory_build(docs: list[dict], path: Path) -> None:
    ix = CaseIndex()
    pairs = [(1_000 + i, d) for i, d in enumerate(docs)]
    for k in range(0, len(pairs), 20_000):       # the feed is read in chunks of this size
        ix.apply(pairs[k:k + 20_000])
    path.write_bytes(ix.to_bytes())


class MemorySearch:
    def __init__(self, path: Path):
        self.ix = CaseIndex.from_bytes(path.read_bytes())

    def search(self, q: CaseQuery) -> tuple[int, int, list]:
        return summarised(self.ix.search(resolve(q, self.ix), q.sort, q.order == "desc", q.page,
                                         q.per_page))


def summarised(page) -> tuple[int, int, list]:
    return page.total, page.visits_matched, [
        (c.patient, c.matching, (c.visits, text.day_number(c.first), text.day_number(c.latest)))
        for c in page.cases]


def _tantivy():
    from benchmarks.portal import tantivy_engine
    return tantivy_engine


ENGINES = {"memory": (MemorySearch, "index.npz"), "duckdb": (DuckSearch, "visits.duckdb"),
           "tantivy": (lambda path: ViewSearch(_tantivy().Reader(path)), "tantivy"),
           "mapped": (lambda path: ViewSearch(MappedIndex(path)), "mapped")}
BUILDERS = {"memory": memory_build,
            "tantivy": lambda docs, path: indexed(_tantivy().Indexer)(docs, path),
            "mapped": indexed(MappedIndexer)}


def serve(engine: str, path: Path, rounds: int) -> dict:
    """In its own process: open the index, answer every query shape ``rounds`` times."""
    t0 = time.perf_counter()
    searcher = ENGINES[engine][0](path)
    opened = time.perf_counter() - t0
    t0 = time.perf_counter()
    searcher.search(CaseQuery.model_validate(QUERIES[0][1]))
    first = time.perf_counter() - t0
    per: dict[str, list[float]] = {label: [] for label, _ in QUERIES}
    answers = {}
    for _ in range(rounds):
        for label, params in QUERIES:
            t0 = time.perf_counter()
            answers[label] = searcher.search(CaseQuery.model_validate(params))
            per[label].append((time.perf_counter() - t0) * 1000)
    every = [x for xs in per.values() for x in xs]
    return {"open_s": round(opened, 2), "first_search_s": round(opened + first, 2), **proc_mem(),
            "p50_ms": round(pct(every, 50), 1), "p95_ms": round(pct(every, 95), 1),
            "p99_ms": round(pct(every, 99), 1), "mean_ms": round(statistics.fmean(every), 1),
            "per_query_p50_ms": {k: round(pct(v, 50), 1) for k, v in per.items()},
            "answers": {k: [a[0], a[1], [list(x[:2]) + list(x[2]) for x in a[2]]]
                        for k, a in answers.items()}, "load": load_avg()}


def size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--engines", default="memory,duckdb,tantivy")
    ap.add_argument("--stream", action="store_true",
                    help="never hold all documents (10 M); engines mapped/tantivy only")
    ap.add_argument("--concurrent", type=int, default=1,
                    help="querying processes answering at once on the same index")
    ap.add_argument("--out", default="engines.json", help="result file (in this folder)")
    ap.add_argument("--serve", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        print(json.dumps(serve(a.serve[0], Path(a.serve[1]), a.rounds)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-engines-", dir=HERE.parents[1] / ".cache"
                                 if (HERE.parents[1] / ".cache").is_dir() else None))
    result = {"visits": a.visits, "patients": a.patients, "rounds": a.rounds, "engines": {}}
    try:
        t0 = time.perf_counter()
        docs = None if a.stream else list(documents(a.visits, a.patients))
        result["generate_s"] = round(time.perf_counter() - t0, 1)
        data = None
        for engine in a.engines.split(","):
            path = work / ENGINES[engine][1]
            load0 = load_avg()
            t0 = time.perf_counter()
            if a.stream:                 # generation is inside the build time here
                BUILDERS[engine](documents(a.visits, a.patients), path)
            elif engine in BUILDERS:
                BUILDERS[engine](docs, path)
            else:
                if data is None:
                    data = rows(docs)
                duck_build(data, path)
            built = round(time.perf_counter() - t0, 1)
            procs = [subprocess.Popen([sys.executable, __file__, "--rounds", str(a.rounds),
                                       "--serve", engine, str(path)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                     for _ in range(a.concurrent)]
            outs = [p.communicate() for p in procs]
            for p, (_, err) in zip(procs, outs):
                if p.returncode:
                    raise SystemExit(f"{engine} serve failed:\n{err[-3000:]}")
            served = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
            result["engines"][engine] = {"build_s": built, "build_load": load0,
                                         "disk_mib": size_mib(path), **served[0]}
            if a.concurrent > 1:
                result["engines"][engine]["concurrent"] = [
                    {k: v for k, v in x.items() if k not in ("answers", "per_query_p50_ms")}
                    for x in served]
            print(engine, json.dumps({k: v for k, v in result["engines"][engine].items()
                                      if k != "answers"}), flush=True)
        ref = result["engines"].get("memory", {}).get("answers")
        for engine, r in result["engines"].items():
            if ref and engine != "memory":
                r["same_totals"] = all(r["answers"][k][:2] == ref[k][:2] for k in ref)
                r["same_first_page"] = all(
                    [x[:2] for x in r["answers"][k][2]] == [x[:2] for x in ref[k][2]] for k in ref)
                r["same_summaries"] = all(r["answers"][k][2] == ref[k][2] for k in ref)
                r["differs"] = [k for k in ref if r["answers"][k] != ref[k]]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (HERE / a.out).write_text(json.dumps(result, indent=1) + "\n")
    for engine, r in result["engines"].items():
        print(engine, {k: v for k, v in r.items() if k not in ("answers", "per_query_p50_ms")})


if __name__ == "__main__":
    main()
