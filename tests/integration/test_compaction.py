"""Compaction of a series directory on the real cluster: many small batch files become one,
orphaned bytes are reclaimed, rows of an unfinished commit and young files are left alone, and
every committed object still reads back by sha256."""
from __future__ import annotations

import hashlib
import os
import uuid

import pytest

pytestmark = pytest.mark.cluster


def _obj(study: str, series: str, n: int):
    from pacs_hdfs.dicom.commit import Prepared
    sop = f"2.25.{uuid.uuid4().int}"
    attrs = {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
             "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT",
             "PatientID": "CMP-TEST", "TransferSyntaxUID": "1.2.840.10008.1.2.1"}
    return Prepared(b"DICM" + os.urandom(n), attrs)


def test_compaction_merges_reclaims_and_keeps_every_object(cluster, settings):
    from pacs_hdfs import clients
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import Committer, container_dir
    from pacs_hdfs.dicom.compaction import compact_series
    from pacs_hdfs.dicom.stored import read_bytes
    hbase, hdfs = clients.hbase(settings), clients.hdfs(settings)
    study, series = f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}"
    directory = container_dir(study, series)
    writer = ContainerWriter(hdfs, writer="cmp-test")
    committer = Committer(hbase, writer)
    objs = [_obj(study, series, 5000 + i) for i in range(12)]
    for i in range(0, 12, 3):  # four commits -> four batch files
        assert all(o.acknowledged for o in committer.store_many(objs[i:i + 3]))
    orphan = writer.write(directory, [("nobody", os.urandom(7000))])[0].path
    # an unfinished commit: its instance row is written but its sop row never was
    from pacs_hdfs.dicom.commit import instance_row
    stray = _obj(study, series, 3000)
    stray_loc = writer.write(directory, [(stray.key.decode(), stray.data)])[0]
    hbase.put("instance", stray.key, instance_row(stray, stray_loc))
    before = {f.path for f in hdfs.list_status(directory)}
    assert len(before) == 6

    young = compact_series(hbase, hdfs, directory, writer, grace_s=3600)
    assert young.objects_moved == 12 and young.left_young == 1  # the orphan is too young
    assert young.left_unfinished == 1 and orphan in {f.path for f in hdfs.list_status(directory)}

    done = compact_series(hbase, hdfs, directory, writer, grace_s=0)
    after = {f.path for f in hdfs.list_status(directory)}
    assert orphan not in after and done.orphan_files_deleted == 1
    assert stray_loc.path in after  # rows of an unfinished commit keep their file
    assert len(after) == 2
    for o in objs + [stray]:
        row = hbase.get("instance", o.key)
        assert hashlib.sha256(read_bytes(hbase, hdfs, o.key, row)).hexdigest() == o.sha256
    hdfs.delete(f"dicom/containers/{study}", recursive=True)
