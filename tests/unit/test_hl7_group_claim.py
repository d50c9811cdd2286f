"""The ownership check runs once per group commit (`VisitStore._claim`): one read per table
for all requests, the same decisions as a check per request, refused visits written nowhere."""
from __future__ import annotations

from hl7_gateway.hospital.samples import sample_visit, visit_token
from hl7_gateway.ownership import VISIT_OWNER
from hl7_gateway.store import _Prefetched, _Request
from tests.unit.test_gateway_identity import PSEUDONYM_A, PSEUDONYM_B, MemoryHBase, RowStore


class CountingHBase(MemoryHBase):
    def __init__(self):
        super().__init__()
        self.reads = []

    def get_many(self, table, keys, columns=None):
        self.reads.append(table)
        return super().get_many(table, keys, columns)


def commit(store, *requests):
    store._commit(list(requests))
    return [r.future.result() for r in requests]


def test_two_hospitals_racing_for_a_new_visit_in_one_commit_one_wins():
    memory = CountingHBase()
    store = RowStore(memory)
    vid = visit_token("raced")
    a = _Request([sample_visit(visit_id=vid, patient_id=PSEUDONYM_A)], "ra", "hospA")
    b = _Request([sample_visit(visit_id=vid, patient_id=PSEUDONYM_B),
                  sample_visit(visit_id=visit_token("b-own"), patient_id=PSEUDONYM_B)],
                 "rb", "hospB")
    first, second = commit(store, a, b)
    assert (first.visits, first.refused) == (1, {})
    assert second.visits == 1 and second.refused[vid].code == "VISIT_OF_ANOTHER_HOSPITAL"
    assert memory.tables["visit"][vid.encode()][VISIT_OWNER] == b"hospA"
    assert sorted(memory.reads) == ["subject", "visit"]  # one read per table for the commit


def test_a_wholly_refused_request_shares_a_commit_and_writes_nothing():
    memory = CountingHBase()
    store = RowStore(memory)
    vid = visit_token("a-first")
    commit(store, _Request([sample_visit(visit_id=vid, patient_id=PSEUDONYM_A)], "r1", "hospA"))
    theirs = _Request([sample_visit(visit_id=vid, city="Gdańsk", patient_id=PSEUDONYM_B)],
                      "r2", "hospB")
    mine = _Request([sample_visit(visit_id=visit_token("a-second"), patient_id=PSEUDONYM_A)],
                    "r3", "hospA")
    refused, stored = commit(store, theirs, mine)
    assert refused.visits == 0 and set(refused.refused) == {vid}
    assert stored.visits == 1 and stored.refused == {}
    assert memory.tables["visit"][vid.encode()][b"v:city"] != "Gdańsk".encode()
    assert PSEUDONYM_B.encode() not in memory.tables["subject"]


def test_prefetched_rows_answer_only_the_asked_columns_and_families():
    rows = {"visit": {b"k": {b"v:hospital": b"h", b"v:index": b"[]", b"a:x": b"1"}}}
    got = _Prefetched(rows).get_many("visit", [b"k", b"missing"], [b"v:hospital", b"a"])
    assert got == {b"k": {b"v:hospital": b"h", b"a:x": b"1"}}
