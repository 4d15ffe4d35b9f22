"""The ceiling row's split of the test clips into two halves (its FID/KID/FVD compare one half with the other)."""

from __future__ import annotations

from dicetalk_bench.evaluation.reference_rows import split_halves


def test_split_halves_is_seeded_disjoint_and_complete():
    ids = [f"c{i}" for i in range(9)]
    a, b = split_halves(ids, 4)
    assert (a, b) == split_halves(list(reversed(ids)), 4) and len(a) == 5 and len(b) == 4
    assert sorted(a + b) == sorted(ids) and split_halves(ids, 5) != (a, b)
    assert a == sorted(a) and b == sorted(b)


def test_split_halves_of_one_clip_leaves_the_second_half_empty():
    assert split_halves(["only"], 0) == (["only"], [])
