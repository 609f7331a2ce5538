"""``affix storage init`` on a local store (issue #25, trap 6): it makes the blob folder the
settings name, says so, and says when it was there already; it makes no database.
system/test_storage_init_s3.py has the bucket of an S3 store."""
from support.cli import affix, assert_refused


def test_storage_init_makes_the_blob_folder_once(tmp_path, capsys):
    environ = {"AFFIX_DATA_DIR": str(tmp_path / "data")}
    folder = tmp_path / "data" / "blobs"

    assert affix(environ, "storage", "init") == (0, f"created the folder {folder}\n")
    assert affix(environ, "storage", "init") == (
        0, f"the folder {folder} exists already: nothing to do\n")
    assert capsys.readouterr().err == ""
    # the folder and the staging folder inside it; no database
    assert sorted(path.relative_to(tmp_path).as_posix()
                  for path in tmp_path.rglob("*")) == ["data", "data/blobs", "data/blobs/.staging"]


def test_storage_init_where_no_folder_can_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "data").write_bytes(b"a file, where the data folder should be")
    folder = tmp_path / "data" / "blobs"
    assert_refused(capsys, {"AFFIX_DATA_DIR": str(tmp_path / "data")}, ["storage", "init"],
                   f"could not create the folder {folder}: Not a directory")
    assert (tmp_path / "data").read_bytes() == b"a file, where the data folder should be"
