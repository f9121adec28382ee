"""The self-signed certificate `make serve` uses when no SERVE_TLS_CERT is given (local use only)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

VALID_DAYS = 30


def certificate_names(allowed_hosts: list[str]) -> list[str]:
    """The concrete host names and addresses of ALLOWED_HOSTS (patterns like `*` and `.example.com`
    name no single host), so the certificate covers every name the app answers to."""
    names = [host.strip("[]") for host in allowed_hosts if host and not host.startswith((".", "*"))]
    return list(dict.fromkeys(names)) or ["localhost"]


def _subject_alt_names(names: list[str] | tuple[str, ...]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            entries.append(f"IP:{name}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return ",".join(entries)


def _usable(cert: Path, key: Path, san_file: Path, san: str) -> bool:
    """Made earlier for the same names, and valid for at least another day."""
    if not (cert.exists() and key.exists() and san_file.exists()) or san_file.read_text() != san:
        return False
    check = ["openssl", "x509", "-checkend", "86400", "-noout", "-in", str(cert)]
    return subprocess.run(check, capture_output=True).returncode == 0


def self_signed_pair(directory: Path, names: list[str] | tuple[str, ...]) -> tuple[Path, Path]:
    """(certificate, key) in `directory`, made with openssl unless a usable pair is there."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, san_file = directory / "cert.pem", directory / "key.pem", directory / "names.txt"
    san = _subject_alt_names(names)
    if not _usable(cert, key, san_file, san):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", str(VALID_DAYS), "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        key.chmod(0o600)
        san_file.write_text(san)
    rule = "!" * 100
    print(
        f"{rule}\n!! SELF-SIGNED TLS certificate, for local use only: {cert}\n"
        f"!! (names {san}). Browsers warn about it; set SERVE_TLS_CERT and SERVE_TLS_KEY to a real pair.\n{rule}",
        file=sys.stderr,
        flush=True,
    )
    return cert, key
