"""A real nginx (Debian's) in front of an affix server, configured with the server block the
README's *Serving* section shows, so that the configuration users copy is the one tested."""
import contextlib
import os
import re
import shutil
import socket
import subprocess

import pytest

from .net import HOST, free_port
from .processes import REPO_ROOT, stop
from .waiting import wait_for

README = REPO_ROOT / "README.md"
_NGINX_BLOCK = re.compile(r"```nginx\n(.*?)```", re.DOTALL)
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def readme_server_block() -> str:
    """The README's nginx ``server { ... }`` block, as it stands."""
    blocks = _NGINX_BLOCK.findall(README.read_text())
    assert len(blocks) == 1, "the README shows one nginx configuration"
    return blocks[0]


def configuration(run_dir, port, upstream_port) -> str:
    """A whole nginx.conf around the README's server block: it listens on loopback without
    TLS, proxies to ``upstream_port``, and keeps every file of its own in ``run_dir``."""
    server = readme_server_block()
    server, listens = re.subn(r"^(\s*)listen [^;]*;", rf"\1listen {HOST}:{port};", server,
                              flags=re.MULTILINE)
    server, upstreams = re.subn(r"proxy_pass http://127\.0\.0\.1:8000;",
                                f"proxy_pass http://{HOST}:{upstream_port};", server)
    assert (listens, upstreams) == (1, 1), server
    temp_paths = "".join(f"    {name}_temp_path {run_dir / name};\n" for name in _TEMP_PATHS)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 1;\npid {run_dir / 'nginx.pid'};\n"
            f"error_log {run_dir / 'error.log'} info;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n    access_log off;\n{temp_paths}{server}}}\n")


@contextlib.contextmanager
def nginx_in_front(run_dir, upstream_port):
    """nginx on a free loopback port in front of ``upstream_port``; yields its base URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.skip("nginx is not installed (apt-get install nginx-light; .ci/run does)")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = run_dir / "nginx.conf"
    config.write_text(configuration(run_dir, port, upstream_port))
    process = subprocess.Popen([binary, "-c", str(config), "-p", str(run_dir)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=open(run_dir / "stderr.log", "wb"),
                               start_new_session=True)
    try:
        def listening():
            assert process.poll() is None, (run_dir / "error.log").read_text(errors="replace")
            with contextlib.suppress(OSError):
                socket.create_connection((HOST, port), timeout=1).close()
                return True
            return False
        wait_for(listening, "nginx to listen")
        yield f"http://{HOST}:{port}"
    finally:
        stop(process)
