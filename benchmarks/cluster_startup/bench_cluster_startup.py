"""Cold `pacs cluster up` time and the summed RSS of all daemons.

Cold = a fresh, empty PACS_HOME (NameNode format included), nothing running. A cluster that is
running is stopped first and NOT restarted. Targets (issue 2): <= 90 s and <= 4 GiB RSS.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import record  # noqa: E402
from deploy.supervisor import Supervisor  # noqa: E402
from pacs_hdfs.settings import Settings, get_settings  # noqa: E402


def main() -> None:
    Supervisor(get_settings()).down()
    home = Path(tempfile.mkdtemp(prefix="pacs-bench-"))
    sup = Supervisor(Settings(home=home))
    try:
        t0 = time.monotonic()
        sup.up()
        seconds = time.monotonic() - t0
        time.sleep(10)  # let start-up transients settle before reading RSS
        status = sup.status()
    finally:
        sup.down()
        shutil.rmtree(home, ignore_errors=True)
    rss = {d["name"]: d["rss_mb"] for d in status["daemons"]}
    result = {"cold_start_s": round(seconds, 1), "total_rss_mib": status["total_rss_mb"],
              "healthy": status["healthy"], "datanodes": status["hdfs"]["live_datanodes"],
              "target_start_s": 90, "target_rss_mib": 4096, "rss_by_daemon_mib": rss}
    record(Path(__file__).parent, result,
           ["cold_start_s", "total_rss_mib", "datanodes", "healthy"])
    print(result)


if __name__ == "__main__":
    main()
