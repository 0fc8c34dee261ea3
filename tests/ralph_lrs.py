"""A real learning record store for the xAPI-out tests: ralph's (``ralph-malph``) LRS on its
file-system backend, in a subprocess on a free loopback port, with HTTP Basic credentials made
by ``ralph auth``. It is what ``ralph runserver --backend fs`` starts, with one change: the
backend appends to its statements file (see ``tests/ralph_append.py``).

ralph's server extras pin an older click than this project's, so ralph lives in a virtualenv of
its own: ``RALPH_BIN`` names its ``ralph`` command; else ``.ralph/bin/ralph`` in the checkout
(``make ralph`` makes it), else ``ralph`` on the PATH.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER, SECRET = "cat-engine", "lrs-secret-0123456789"


class Unavailable(Exception):
    """No runnable ralph."""


def ralph_command() -> str:
    """The ``ralph`` executable to run, if one works."""
    candidates = [os.environ.get("RALPH_BIN"), str(ROOT / ".ralph" / "bin" / "ralph"),
                  shutil.which("ralph")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "runserver", "--help"], capture_output=True,
                                   text=True, timeout=60, check=False)
            if probe.returncode == 0:
                return candidate
    raise Unavailable("ralph's LRS (pip install 'ralph-malph[cli,lrs]' in a virtualenv of its "
                      "own: `make ralph`; or set RALPH_BIN)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RalphLrs:
    """ralph's LRS in ``folder``; :meth:`start` and :meth:`stop` may repeat (statements are
    kept in the folder, so a restarted LRS still has them)."""

    def __init__(self, folder: Path) -> None:
        self.command = ralph_command()
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.endpoint = f"{self.url}/xAPI/"
        self.env = {**os.environ, "RALPH_APP_DIR": str(folder),
                    "RALPH_AUTH_FILE": str(folder / "auth.json"),
                    "RALPH_RUNSERVER_BACKEND": "fs"}
        subprocess.run([self.command, "auth", "-u", USER, "-p", SECRET, "-s", "all",
                        "-M", "mailto:lrs-writer@example.org", "-w"], env=self.env,
                       cwd=folder, capture_output=True, check=True, timeout=120)
        self.process: subprocess.Popen | None = None

    def start(self) -> RalphLrs:
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - the server keeps it
        python = str(Path(self.command).with_name("python"))
        env = {**self.env,
               "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(self.folder / "data")}
        self.process = subprocess.Popen(
            [python, str(Path(__file__).with_name("ralph_append.py")), "127.0.0.1",
             str(self.port)],
            env=env, cwd=self.folder, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ralph exited: "
                                   + (self.folder / "server.log").read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{self.url}/__heartbeat__", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("ralph did not answer within 60 s")

    def stop(self) -> None:
        """Stop the server (its reloader and worker: the whole process group it leads)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
        deadline = time.monotonic() + 20  # until the port is free again
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)

    def statements(self) -> list[dict]:
        """Every statement the LRS holds (all pages), read back with GET."""
        token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "X-Experience-API-Version": "1.0.3"}
        out: list[dict] = []
        path = "/xAPI/statements?limit=100"
        while path:
            request = urllib.request.Request(self.url + path, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as reply:
                page = json.loads(reply.read())
            out += page["statements"]
            more = page.get("more") or ""
            path = more if more.startswith("/") else (more and "/" + more.split("/", 3)[-1])
        return out
