"""The client's config file as docs/guides/upload-client.md shows it
(docs/examples/client.toml): a server's own table wins over the top-level key."""
import shutil

from affix.app.client.uploads import api_key
from support.processes import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "examples" / "client.toml"


def test_the_guide_s_file_gives_its_server_its_own_key_and_every_other_the_top_level_one(
        tmp_path):
    (tmp_path / "affix").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "affix" / "client.toml")
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = tmp_path / "affix" / "client.toml"

    assert api_key(environ, "https://affix.example.com") == (
        "your key on affix.example.com",
        f'api_key in {path} ([servers."https://affix.example.com"])')
    assert api_key(environ, "https://elsewhere.example.com") == (
        "your key on any server", f"api_key in {path} (the top level)")
