"""How an upload in parts is cut (S3's rules: parts of at least 5 MiB but the last, at most
10,000 of them), and what completion says of parts that are not the file."""
import pytest

from affix.app.uploads.direct_parts import held_as_planned
from affix.storage.s3_direct_parts import HeldPart, PartPlan
from support.content import MiB

GiB = 1024 * MiB


@pytest.mark.parametrize("size, part_size, count, last", [
    (0, 8 * MiB, 1, 0),
    (1, 8 * MiB, 1, 1),
    (8 * MiB, 8 * MiB, 1, 8 * MiB),
    (8 * MiB + 1, 8 * MiB, 2, 1),
    (GiB, 8 * MiB, 128, 8 * MiB),
    # 10,000 parts of 8 MiB hold 78.1 GiB; beyond, parts grow by whole MiB
    (80_000 * MiB, 8 * MiB, 10_000, 8 * MiB),
    (80_000 * MiB + 1, 9 * MiB, 8_889, 80_000 * MiB + 1 - 8_888 * 9 * MiB),
    (5 * 1024 * GiB, 525 * MiB, 9_987, 5 * 1024 * GiB - 9_986 * 525 * MiB),
])
def test_a_file_is_cut_within_s3_s_rules(size, part_size, count, last):
    plan = PartPlan.for_size(size)
    assert (plan.part_size, plan.count, plan.length(plan.count)) == (part_size, count, last)
    assert plan.count <= 10_000 and plan.part_size >= 5 * MiB
    assert (plan.count - 1) * plan.part_size + plan.length(plan.count) == size


def test_parts_that_are_the_file_have_nothing_wrong():
    plan = PartPlan.for_size(8 * MiB + 3)
    assert held_as_planned(plan, [HeldPart(1, 8 * MiB, "a"), HeldPart(2, 3, "b")]) == []


def test_every_problem_of_the_parts_is_named():
    plan = PartPlan.for_size(30 * 8 * MiB)
    held = [HeldPart(2, 8 * MiB - 1, "a"), HeldPart(31, 5, "b")]
    assert held_as_planned(plan, held) == [
        "parts 1, 3, 4, 5, 6, 7, 8, 9, 10, 11... of 30 not uploaded",
        f"part 2 has {8 * MiB - 1} bytes, not {8 * MiB}",
        "part 31 is beyond the 30 parts of the file",
    ]
