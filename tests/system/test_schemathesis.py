"""schemathesis drives a live server from affix's own OpenAPI document: no request it makes may
get a 5xx, and every answer must match the document (status, content type, body schema)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

# a real affix serve (the server fixture of support.servers), and schemathesis in a subprocess
pytestmark = pytest.mark.system

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
])
# fixed, so that CI runs the same requests every time
SEED = "20261128"
# how schemathesis sends what it has no serializer of its own for (tus's upload bytes)
HOOKS = Path(__file__).parents[1] / "support" / "schemathesis_hooks.py"


@pytest.mark.long
@pytest.mark.one_database("the API's contract (statuses, types, schemas), the same on both")
def test_no_request_schemathesis_makes_gets_a_server_error(server, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", server.url("/api/v3/spec.json"),
         "--header", f"Authorization: Bearer {server.api_key}",
         "--checks", CHECKS, "--max-examples", "15", "--seed", SEED, "--no-color",
         # a HEAD is answered by its GET's responder (tests/test_head.py): the same requests
         # again would double the run and find nothing new
         "--exclude-method", "HEAD"],
        # schemathesis keeps its run data in the working directory
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    assert "Traceback" not in server.stderr()
