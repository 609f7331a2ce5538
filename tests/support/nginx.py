"""A real nginx (Debian's) in front of an affix server, configured with the server blocks of
``deploy/nginx.conf``, which the deploying guide includes, so that the configuration users copy
is the one tested: over HTTPS with a self-signed certificate of its own, or over plain HTTP."""
import contextlib
import datetime
import ipaddress
import os
import re
import shutil
import socket
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .net import HOST, free_port
from .processes import REPO_ROOT, stop
from .waiting import wait_for

RECIPE = REPO_ROOT / "deploy" / "nginx.conf"
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# in the run folder: the certificate clients are to trust (requests' verify=), and its key
CERTIFICATE = "certificate.pem"
PRIVATE_KEY = "private-key.pem"


def recipe_server_blocks() -> str:
    """The recipe's ``server { ... }`` blocks, as they stand."""
    return RECIPE.read_text()


def write_self_signed_certificate(run_dir) -> None:
    """A certificate for the loopback address, signed by its own key, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (run_dir / CERTIFICATE).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (run_dir / PRIVATE_KEY).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def configuration(run_dir, port, redirect_port, upstream_port, tls) -> str:
    """A whole nginx.conf around the recipe's server blocks: the HTTPS one listens on loopback's
    ``port`` (plain HTTP unless ``tls``) with the certificate in ``run_dir``, the redirecting one
    on ``redirect_port``; it proxies to ``upstream_port``, and keeps every file of its own in
    ``run_dir``."""
    server = recipe_server_blocks()
    served = f"{HOST}:{port} ssl" if tls else f"{HOST}:{port}"
    replacements = (
        (r"^(\s*)listen 443 ssl;", rf"\1listen {served};"),
        (r"^(\s*)listen 80;", rf"\1listen {HOST}:{redirect_port};"),
        (r"proxy_pass http://127\.0\.0\.1:8000;", f"proxy_pass http://{HOST}:{upstream_port};"),
        (r"ssl_certificate +/\S+;", f"ssl_certificate {run_dir / CERTIFICATE};"),
        (r"ssl_certificate_key +/\S+;", f"ssl_certificate_key {run_dir / PRIVATE_KEY};"),
    )
    for pattern, replacement in replacements:
        server, count = re.subn(pattern, replacement, server, flags=re.MULTILINE)
        assert count == 1, (pattern, server)
    temp_paths = "".join(f"    {name}_temp_path {run_dir / name};\n" for name in _TEMP_PATHS)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 1;\npid {run_dir / 'nginx.pid'};\n"
            f"error_log {run_dir / 'error.log'} info;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n    access_log off;\n{temp_paths}{server}}}\n")


@contextlib.contextmanager
def nginx_in_front(run_dir, upstream_port, tls=False, redirect_port=None):
    """nginx on a free loopback port in front of ``upstream_port``; yields its base URL, an
    ``https`` one with ``tls`` (whose certificate is ``run_dir / CERTIFICATE``). The recipe's
    redirecting server listens on ``redirect_port`` (default: another free port)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.skip("nginx is not installed (apt-get install nginx-light; .ci/run does)")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    write_self_signed_certificate(run_dir)
    config = run_dir / "nginx.conf"
    config.write_text(
        configuration(run_dir, port, redirect_port or free_port(), upstream_port, tls))
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
        yield f"{'https' if tls else 'http'}://{HOST}:{port}"
    finally:
        stop(process)
