"""The 50-mutation fuzz of ingest validation (issue 12, item 5), as a pure unit test.

The objects and their labels come from `tests.dicom_mutations` (the integration test sends the
same objects through the real SCP). Asserted here: `check` never raises, no defective object
gets success or a warning, and no acceptable object is refused.
"""
from __future__ import annotations

import random
from collections import Counter
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from pacs_hdfs.dicom.validation import MAX_COMMENT, SUCCESS, WARNING, check
from tests.dicom_mutations import DEFAULT_COUNT, KINDS, mutations

MUTATIONS = mutations()

# pydicom warns about every invalid value it converts; these tests make them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_fifty_deterministic_mutations_with_both_labels():
    assert len(MUTATIONS) == DEFAULT_COUNT == 50
    labels = Counter(m.defective for m in MUTATIONS)
    assert labels[True] >= 25 and labels[False] >= 10, labels
    assert {m.kind for m in MUTATIONS} == {k[0] for k in KINDS}          # every kind at least once
    assert [m.data for m in mutations()] == [m.data for m in MUTATIONS]  # same seed, same bytes
    assert len({m.data for m in MUTATIONS}) == 50
    assert [m.data for m in mutations(seed=1)] != [m.data for m in MUTATIONS]


@pytest.mark.parametrize("m", MUTATIONS, ids=lambda m: m.filename)
def test_mutation(m):
    ds = dcmread(BytesIO(m.data), force=True)      # as the SCP parses what it receives
    verdict = check(ds)                            # must not raise
    assert len(verdict.comment) <= MAX_COMMENT
    if m.defective:
        assert verdict.refusal is not None, f"{m.description}: {verdict}"
        assert verdict.status not in (SUCCESS, WARNING)
        assert 0xA900 <= verdict.status <= 0xA9FF or 0xC000 <= verdict.status <= 0xCFFF
    else:
        assert verdict.storable, f"{m.description}: {verdict}"


def test_warning_kinds_warn():
    for m in MUTATIONS:
        if m.kind in ("modality-deleted", "modality-empty", "type2-deleted"):
            assert check(dcmread(BytesIO(m.data), force=True)).status == WARNING, m.description


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm",
                                  "test-SR.dcm"])
def test_random_byte_damage_never_raises(name):
    """Beyond the labelled 50: flip random bytes anywhere after the preamble. Whatever pydicom
    still parses, `check` must answer with a Verdict, never an exception."""
    raw = Path(get_testdata_file(name)).read_bytes()
    rng = random.Random(name)
    checked = 0
    for _ in range(150):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(132, len(data))] = rng.randrange(256)
        try:
            ds = dcmread(BytesIO(bytes(data)), force=True)
        except Exception:  # noqa: BLE001 - the SCP answers 0xC000 before validation
            continue
        verdict = check(ds)
        assert isinstance(verdict.status, int) and len(verdict.comment) <= MAX_COMMENT
        checked += 1
    assert checked > 50
