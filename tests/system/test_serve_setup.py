"""``affix serve`` on a store it cannot use (issue #25): one line before anything is made and
before the admin's key is printed."""
import io

from affix.app.cli.commands import main
from support.s3 import missing_bucket, s3_environ


class NeverStarted:
    """Stands in for gunicorn, which a refused start never reaches."""

    def __init__(self, settings, options, metrics_folder=None):
        raise AssertionError("the server was started")


def test_serve_on_a_bucket_that_does_not_exist_says_so_before_the_admin_key(
        tmp_path, databases, s3_server, capsys):
    environ = databases.environ(tmp_path / "data", AFFIX_STORAGE_URL="s3://no-such-bucket/affix",
                                **s3_environ(s3_server))
    out = io.StringIO()
    assert main(["serve"], environ=environ, out=out, server=NeverStarted) == 2
    assert out.getvalue() == ""
    assert capsys.readouterr().err == (
        f"affix: error: store: s3://no-such-bucket/affix: {missing_bucket('no-such-bucket')}\n")
    # neither the SQLite file nor anything else of the data dir; no PostgreSQL tables either
    assert not (tmp_path / "data").exists()
    assert main(["user", "add", "carol"], environ=environ, out=out) == 2
