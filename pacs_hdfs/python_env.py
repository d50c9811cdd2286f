"""What executors on other hosts need to run our Python: the packed environment, our code, and
(on YARN) Spark's jars, built once, uploaded to HDFS under content-addressed names.

- The environment: this venv packed with venv-pack into `settings.python_archive` (default
  $PACS_HOME/data/pacs-env.tar.gz), rebuilt when the installed distributions change. Shipped as
  `spark.archives=<hdfs uri>#env`; executors run `./env/bin/python`. venv-pack links
  `bin/python` to the base interpreter, so nodes need the same Python version at the same path
  (deploy/cluster/README.md). pyspark's jars (executors have Spark's own) and the editable
  install's finder (it points at this checkout, absent on the nodes) stay out.
- Our code: the venv holds an editable install of this repository, so the archive has none of
  it. The data-center packages go as a zip (`SparkContext.addPyFile`), rebuilt when a source
  file changes; the hospital side (deid/, hl7_gateway/hospital/) never leaves, except the
  pure verification modules the data-center code may import (pyproject's import-linter list).
- Spark's jars for YARN containers (`spark.yarn.archive`), so an application does not upload
  the pyspark wheel's ~400 MB of jars every time.

Names on HDFS carry a fingerprint of the content: a new build never overwrites an archive a
running application is still reading.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import sys
import zipfile
from pathlib import Path

from pacs_hdfs.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

#: packages shipped to executors (data-center side), and hospital-side modules allowed in
CODE_PACKAGES = ("pacs_hdfs", "analytics_jobs", "recon_mapreduce", "hl7_gateway")
CODE_EXCLUDE_DIRS = ("hl7_gateway/hospital",)
CODE_EXTRA_FILES = ("deid/__init__.py", "deid/verify.py", "deid/profile_table.py")
ENV_EXCLUDES = ("*/site-packages/pyspark/jars/*", "*/site-packages/__editable__*",
                "*/site-packages/pacs_mdc-*", "*/__pycache__/*", "*.pyc")
ENV_FORMAT_VERSION = 1


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" \
        / "site-packages"


def env_fingerprint(prefix: Path | None = None) -> str:
    """Changes when a distribution is installed, upgraded or removed, or Python changes."""
    prefix = Path(prefix or sys.prefix)
    dists = sorted(p.name for p in _site_packages(prefix).glob("*.dist-info"))
    doc = {"python": sys.version, "dists": dists, "excludes": ENV_EXCLUDES,
           "format": ENV_FORMAT_VERSION}
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".fingerprint")


def _fresh(path: Path, fingerprint: str) -> bool:
    try:
        return path.is_file() and _sidecar(path).read_text().strip() == fingerprint
    except OSError:
        return False


def _publish(tmp: Path, path: Path, fingerprint: str) -> None:
    os.replace(tmp, path)
    _sidecar(path).write_text(fingerprint + "\n")


def env_archive_state(settings: Settings) -> tuple[Path, bool]:
    """(archive path, fresh?) without building anything (`pacs doctor`)."""
    path = settings.python_archive
    return path, _fresh(path, env_fingerprint())


def ensure_env_archive(settings: Settings, progress=log.info) -> Path:
    """The packed venv, built when missing or stale (takes minutes: ~1 GB of packages)."""
    import venv_pack
    path = settings.python_archive
    fingerprint = env_fingerprint()
    if _fresh(path, fingerprint):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    progress(f"packing the Python environment {sys.prefix} into {path} (once per change)")
    venv_pack.pack(prefix=sys.prefix, output=str(tmp), format="tar.gz", force=True,
                   compress_level=1, filters=[("exclude", p) for p in ENV_EXCLUDES])
    _publish(tmp, path, fingerprint)
    return path


def _code_files(root: Path = REPO_ROOT):
    for pkg in CODE_PACKAGES:
        for f in sorted((root / pkg).rglob("*")):
            rel = f.relative_to(root).as_posix()
            if (f.is_file() and "__pycache__" not in f.parts and not rel.endswith(".pyc")
                    and not rel.startswith(CODE_EXCLUDE_DIRS)):
                yield f, rel
    for rel in CODE_EXTRA_FILES:
        if (root / rel).is_file():
            yield root / rel, rel


def ensure_code_zip(settings: Settings) -> Path:
    """Our data-center packages as a zip for executors, rebuilt when a source file changed."""
    files = list(_code_files())
    h = hashlib.sha256()
    for f, rel in files:
        st = f.stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    fingerprint = h.hexdigest()
    path = settings.path("data", "pacs-code.zip")
    if _fresh(path, fingerprint):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for f, rel in files:
            z.write(f, rel)
    _publish(tmp, path, fingerprint)
    return path


def ensure_spark_jars_zip(settings: Settings) -> Path:
    """pyspark's jars, stored uncompressed in one zip for `spark.yarn.archive`."""
    import pyspark
    jars = Path(pyspark.__file__).parent / "jars"
    names = sorted(p.name for p in jars.glob("*.jar"))
    fingerprint = hashlib.sha256(f"{pyspark.__version__}\n{names}".encode()).hexdigest()
    path = settings.path("data", "spark-jars.zip")
    if _fresh(path, fingerprint):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for name in names:
            z.write(jars / name, name)
    _publish(tmp, path, fingerprint)
    return path


def hdfs_copy(settings: Settings, local: Path) -> str:
    """Upload a built file to `<hdfs_root>/env/<stem>-<fingerprint>.<ext>` unless it is there
    with the same size; its hdfs:// URI."""
    from pacs_hdfs import clients
    fingerprint = _sidecar(local).read_text().strip()[:12]
    stem, _, ext = local.name.partition(".")
    path = posixpath.join(settings.hdfs_root, "env", f"{stem}-{fingerprint}.{ext}")
    store = clients.hdfs(settings)
    info = store.info(path)
    if info is None or info.length != local.stat().st_size:
        store.upload(path, local)
    return store.url(path)


def hdfs_archive_path(settings: Settings) -> str | None:
    """Where the current environment archive lives on HDFS (None when not built yet)."""
    path, fresh = env_archive_state(settings)
    if not fresh:
        return None
    stem, _, ext = path.name.partition(".")
    fingerprint = _sidecar(path).read_text().strip()[:12]
    return posixpath.join(settings.hdfs_root, "env", f"{stem}-{fingerprint}.{ext}")


def shipping_conf(settings: Settings) -> tuple[dict[str, str], Path]:
    """Spark properties that ship the environment (and on YARN Spark's jars), and the code zip
    for `addPyFile`. Builds and uploads what is missing or stale."""
    env_uri = hdfs_copy(settings, ensure_env_archive(settings))
    conf = {"spark.archives": f"{env_uri}#env"}
    if settings.on_yarn:
        conf["spark.yarn.archive"] = hdfs_copy(settings, ensure_spark_jars_zip(settings))
    return conf, ensure_code_zip(settings)
