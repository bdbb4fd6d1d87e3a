"""`autointerp serve` over real HTTP: the same pages, new labels without a restart, local only."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autointerp.cli import main
from autointerp.report.escape import page_name
from autointerp.report.server import ReportServer
from tests.report.runs import Written, result_line

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(fresh_run: Written) -> Iterator[ReportServer]:
    server = ReportServer(fresh_run.run, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def get(
    server: ReportServer, path: str, host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host} if host else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def meta(server: ReportServer) -> dict[str, object]:
    status, _, body = get(server, "/data/meta.js")
    assert status == 200
    return json.loads(body.decode().removeprefix("AUTOINTERP_DATA.meta(").removesuffix(");\n"))


def test_it_serves_the_site(served: ReportServer, fresh_run: Written) -> None:
    status, headers, _ = get(served, "/")
    assert status == 302 and headers["Location"] == "/index.html"
    status, headers, body = get(served, "/index.html")
    assert status == 200 and b'type="search"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    assert meta(served)["live"] is True
    key = fresh_run.labelled[0]
    status, _, body = get(served, f"/components/{page_name(key)}")
    assert status == 200 and f'data-component-key="{key}"'.encode() in body
    assert get(served, "/components/nope.html")[0] == 404
    assert get(served, "/../../etc/passwd")[0] == 404
    assert get(served, "/assets/index.js")[1]["Content-Type"].startswith("text/javascript")


def test_new_labels_appear_without_a_restart(served: ReportServer, fresh_run: Written) -> None:
    before = meta(served)
    waiting = next(k for k in fresh_run.alive if k not in fresh_run.labelled)
    page = f"/components/{page_name(waiting)}"
    assert b"Not labelled" in get(served, page)[2]
    with open(fresh_run.run.results_path, "ab") as f:  # what the daemon does
        f.write(result_line(waiting, "a label written while serving"))
    after = meta(served)
    assert after["labelled"] == before["labelled"] + 1  # type: ignore[operator]
    assert after["version"] != before["version"]
    last = int(after["shards"]) - 1  # type: ignore[call-overload]
    assert waiting.encode() in get(served, f"/data/rows-{last:04d}.js")[2]
    assert b"a label written while serving" in get(served, page)[2]


def test_it_answers_only_requests_for_itself(served: ReportServer) -> None:
    port = served.server_address[1]
    assert get(served, "/index.html", host=f"localhost:{port}")[0] == 200
    assert get(served, "/index.html", host=f"evil.example:{port}")[0] == 403
    assert served.server_address[0] == "127.0.0.1"


def test_a_port_in_use_is_one_line(fresh_run: Written, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(fresh_run.run.root), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    expected = f"port {port} on 127.0.0.1 is in use; choose another with --port (or --port 0)"
    assert err == f"autointerp: {expected}"


def test_ctrl_c_stops_it_cleanly(fresh_run: Written) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "autointerp", "serve", str(fresh_run.run.root), "--port", "0"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "serving" in line and "http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split()[0]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/index.html")
        assert conn.getresponse().status == 200
        conn.close()
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped serving" in out and "Traceback" not in err
