"""Start and stop Azurite (the npm package pinned in package.json) for tests and the demo."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key: it is the same on every machine and opens nothing outside Azurite.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen[bytes]
    workspace: str | None = None
    """A directory of our own for Azurite's files, removed on stop; None when the caller chose the location."""

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
                f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
                f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.workspace:
            shutil.rmtree(self.workspace, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(*, in_memory: bool = True, location: Path | None = None, ports: tuple[int, int, int] | None = None,
          timeout: float = 30.0) -> Azurite:
    """Start Azurite on free ports (or the given ones) and wait until all three services answer."""
    if not AZURITE.exists():
        raise RuntimeError("Azurite is not installed: run `make install` (npm ci installs it from package.json)")
    blob, queue, table = ports or (free_port(), free_port(), free_port())
    workspace = None
    if location is None:
        workspace = tempfile.mkdtemp(prefix="azurite-")
        location = Path(workspace)
    command = [str(AZURITE), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
               "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
               "--blobPort", str(blob), "--queuePort", str(queue), "--tablePort", str(table)]
    # In memory, Azurite keeps nothing on disk (it refuses --location then); the workspace holds only the log.
    command += ["--inMemoryPersistence"] if in_memory else ["--location", str(location)]
    log = open(location / "azurite.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
                               cwd=location, start_new_session=True)
    azurite = Azurite(blob, queue, table, process, workspace)
    deadline = time.monotonic() + timeout
    while not all(_answers(port) for port in (blob, queue, table)):
        if process.poll() is not None or time.monotonic() > deadline:
            azurite.stop()
            raise RuntimeError(f"Azurite did not start; see {location / 'azurite.log'}")
        time.sleep(0.1)
    return azurite


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
