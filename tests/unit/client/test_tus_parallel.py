"""How ``affix upload --parallel`` cuts a file into partial uploads, and what of them the resume
state remembers."""
import pytest

from affix.app.client.tus_parallel import MIN_PART_SIZE, ParallelTusUpload, part_bounds, run_entry
from affix.app.client.uploads import ResumeState, Uploader
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


BOUNDS = [[0, 8 * MiB], [8 * MiB, 16 * MiB]]


@pytest.mark.parametrize("entry", [
    None,
    "http://127.0.0.1:1/api/v3/attachments/tus/a",
    {"bounds": [[0, 16 * MiB]], "partials": [None]},
    {"bounds": BOUNDS, "partials": [None]},
    {"bounds": BOUNDS, "partials": [None, 5]},
    {"bounds": BOUNDS},
])
def test_a_remembered_run_of_another_cut_or_shape_is_a_new_one(entry):
    assert run_entry(entry, BOUNDS) == {"bounds": BOUNDS, "partials": [None, None]}


def test_a_partial_upload_made_after_another_run_forgot_the_file_is_remembered_anew(tmp_path):
    # the other run of the same command finished and forgot the entry in the meantime
    state = ResumeState(tmp_path / "uploads.json")
    uploader = Uploader("http://127.0.0.1:1/api/v3", "key", state, progress=None)

    ParallelTusUpload(uploader, 2)._remember("file", BOUNDS, 1, "http://127.0.0.1:1/p/2")

    assert state.upload_url("file") == {"bounds": BOUNDS,
                                        "partials": [None, "http://127.0.0.1:1/p/2"]}
