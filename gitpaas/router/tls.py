"""The certificate and key the operator gave for HTTPS (`gitpaas certs:add`), as files nginx reads.

They live in ``certs/`` of the router folder (``server.crt``, and ``server.key`` readable by its
owner only); nginx.conf gets an HTTPS listener exactly when both exist. ``NginxRouter`` decides when
nginx picks them up; this module only keeps the files, and can put back the previous pair when
nginx refuses a new one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gitpaas.store.files import write_atomic

CERTIFICATE_MODE = 0o644
KEY_MODE = 0o600


class CertificateFiles:
    """The certificate files of one router folder, served on ``https_port``."""

    def __init__(self, router_dir: Path, https_port: int) -> None:
        self.directory = router_dir / "certs"
        self.certificate_path = self.directory / "server.crt"
        self.key_path = self.directory / "server.key"
        self.https_port = https_port

    def https_listener(self) -> dict | None:
        """The HTTPS listener's settings for nginx.conf when a certificate was added, else None."""
        if not (self.certificate_path.exists() and self.key_path.exists()):
            return None
        return {"port": self.https_port, "certificate": str(self.certificate_path), "key": str(self.key_path)}

    @contextmanager
    def replacing(self, certificate_pem: bytes, key_pem: bytes) -> Iterator[None]:
        """Write the new pair for the block; if the writing or the block fails, put the previous pair back.

        The router folder must exist; ``certs/`` is created private to its owner.
        """
        self.directory.mkdir(mode=0o700, exist_ok=True)
        files = {self.certificate_path: (certificate_pem, CERTIFICATE_MODE), self.key_path: (key_pem, KEY_MODE)}
        previous = {path: path.read_bytes() if path.exists() else None for path in files}
        try:
            for path, (data, mode) in files.items():
                write_atomic(path, data, mode=mode)
            yield
        except BaseException:
            for path, data in previous.items():
                if data is None:
                    path.unlink(missing_ok=True)
                else:
                    write_atomic(path, data, mode=files[path][1])
            raise

    def remove(self) -> None:
        for path in (self.certificate_path, self.key_path):
            path.unlink(missing_ok=True)
