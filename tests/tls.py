"""Certificates made for one test: a throwaway CA and a server certificate it signed.

Made with the ``openssl`` command (the ``cryptography`` package is not a dependency), as an
operator would make them for a private deployment: an EC P-256 CA, and a server certificate for
the given names and addresses, with the extensions a strict verifier asks for (Python 3.13 and
later verify with ``VERIFY_X509_STRICT``).
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Tls:
    """The files of one test's TLS: the CA that signed, the server's chain and its key."""

    ca: Path
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this CA alone."""
        return ssl.create_default_context(cafile=str(self.ca))


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"openssl {' '.join(map(str, args))} failed: {result.stderr.strip()}")


def _san(names: list[str]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            entries.append(f"IP:{name}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return ",".join(entries)


def make_tls(directory: Path, names: list[str]) -> Tls:
    """A CA in ``directory`` and a server certificate it signed for ``names`` (and addresses)."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command: apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(
        "req", "-x509", *curve, "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=taskqueue test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    _openssl("req", "-new", *curve, "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}")
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName={_san(names)}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", extensions,
    )  # fmt: skip
    key.chmod(0o600)
    return Tls(ca=ca, cert=cert, key=key)
