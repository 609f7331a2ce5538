"""app.client.uploads.Uploader: a sibling, made for another thread, uploads as its origin does."""
from affix.app.client.uploads import ResumeState, Uploader


def test_a_sibling_has_its_origins_way_parallelism_and_chunk_size_and_a_session_of_its_own(
        tmp_path):
    origin = Uploader("http://127.0.0.1:1/api/v3", "key", ResumeState(tmp_path / "state.json"),
                      progress=None, chunk_size=1024, way="tus", parallel=7)

    sibling = origin.sibling()

    assert (sibling.way, sibling.parallel, sibling.chunk_size, sibling.root) == (
        "tus", 7, 1024, "http://127.0.0.1:1/api/v3")
    assert sibling.session is not origin.session
    assert sibling.session.auth == ("apikey", "key")
