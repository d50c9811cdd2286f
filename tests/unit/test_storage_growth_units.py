"""The generated HBase settings that bound disk growth under DICOM ingest (they take effect when
the cluster restarts): WAL count, memstore age, periodic major compaction, cleaner TTLs."""
from __future__ import annotations

from deploy.configs import hadoop_xml, hbase_site
from pacs_hdfs.settings import Settings

MINUTE_MS = 60_000


def site() -> dict:
    return hbase_site(Settings())


def test_live_wals_are_few():
    assert site()["hbase.regionserver.maxlogs"] <= 8


def test_archived_wals_and_hfiles_go_within_minutes():
    s = site()
    # a file goes after its TTL, at the next cleaner run
    assert s["hbase.master.logcleaner.ttl"] + s["hbase.master.cleaner.interval"] <= 2 * MINUTE_MS
    assert s["hbase.master.hfilecleaner.ttl"] + s["hbase.master.cleaner.interval"] \
        <= 2 * MINUTE_MS


def test_deleted_cells_are_compacted_away_within_about_an_hour():
    s = site()
    wake_ms = 10_000  # hbase.server.thread.wakefrequency (default, not overridden)
    assert "hbase.server.thread.wakefrequency" not in s
    checker_ms = wake_ms * s["hbase.server.compactchecker.interval.multiplier"]
    flush_ms = (s["hbase.regionserver.optionalcacheflushinterval"]
                + 1000 * s["hbase.regionserver.periodicmemstoreflusher.rangeofdelayseconds"])
    # the delete markers are flushed well before the store files are old enough to compact
    assert flush_ms < s["hbase.hregion.majorcompaction"] / 4
    # hbase.hregion.majorcompaction.jitter (default 0.5) may add half a period
    assert 1.5 * s["hbase.hregion.majorcompaction"] + checker_ms <= 2 * 60 * MINUTE_MS


def test_compacted_files_leave_the_store_directory_quickly():
    assert site()["hbase.hfile.compaction.discharger.interval"] <= 30_000


def test_values_reach_the_xml():
    xml = hadoop_xml(site())
    assert "<name>hbase.hregion.majorcompaction</name><value>3600000</value>" in xml
    assert "<name>hbase.master.logcleaner.ttl</name><value>60000</value>" in xml
