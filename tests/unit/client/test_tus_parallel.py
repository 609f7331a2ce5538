"""How ``affix upload --parallel`` cuts a file into partial uploads."""
import pytest

from affix.app.client.tus_parallel import MIN_PART_SIZE, part_bounds
from support.content import MiB


@pytest.mark.parametrize("size, parallel, bounds", [
    # no part smaller than MIN_PART_SIZE: a small file is one upload
    (0, 4, []),
    (MIN_PART_SIZE * 2 - 1, 4, [(0, MIN_PART_SIZE * 2 - 1)]),
    (MIN_PART_SIZE * 2, 4, [(0, MIN_PART_SIZE), (MIN_PART_SIZE, MIN_PART_SIZE * 2)]),
    # the last part takes what the others leave
    (24 * MiB + 1, 4, [(0, 8 * MiB + 1), (8 * MiB + 1, 16 * MiB + 2),
                       (16 * MiB + 2, 24 * MiB + 1)]),
    (256 * MiB, 4, [(start, start + 64 * MiB) for start in range(0, 256 * MiB, 64 * MiB)]),
    (256 * MiB, 1, [(0, 256 * MiB)]),
])
def test_parts_cover_the_file_in_order_none_smaller_than_the_least(size, parallel, bounds):
    assert part_bounds(size, parallel) == bounds
