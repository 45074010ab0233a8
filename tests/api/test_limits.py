"""Upload abuse: large bodies are refused before they are read (and only a valid token gets one
read at all), binary content and long names are handled, a 20,000-page PDF is refused without
stalling ``/health``."""

from __future__ import annotations

import io
import socket
import threading
import time
import zipfile

import httpx
import numpy as np
import pytest
from pypdf import PdfWriter

from opsloop.api.app import create_app
from opsloop.config import Settings
from tests.live import free_port, serve

from .conftest import auth, seed_store


@pytest.fixture
def live(sqlite_url, tmp_path):
    tokens = seed_store(sqlite_url)
    port = free_port()
    server = serve(create_app(Settings(home=tmp_path, database_url=sqlite_url, pack="checkout")), port)
    yield f"http://127.0.0.1:{port}", port, tokens
    server.should_exit = True


def _raw_headers_only(port: int, path: str, length: int, token: str | None = None) -> tuple[str, float]:
    """Send a POST's headers claiming ``length`` body bytes and none of the body; the status line
    and the seconds until it came."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((head + "\r\n").encode())
        first = s.recv(4096).decode().split("\r\n", 1)[0]
    return first, time.perf_counter() - t0


def test_large_bodies_are_refused_before_they_are_read(live):
    _url, port, _tokens = live
    status, took = _raw_headers_only(port, "/rag/documents", 50 * 1024 * 1024)
    assert " 413 " in status and took < 2  # over the route's limit: refused at once, token or not
    status, took = _raw_headers_only(port, "/observe", 10 * 1024 * 1024)
    assert " 401 " in status and took < 2  # large and anonymous: 401 before reading
    status, _ = _raw_headers_only(port, "/observe", 10 * 1024 * 1024, "not-a-token")
    assert " 401 " in status


def test_chunked_body_over_the_limit_gets_413(live):
    url, _port, tokens = live

    def chunks():  # a well-formed multipart start, then more file bytes than the route takes
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.md"\r\n\r\n'
        for _ in range(6):
            yield b"x" * (1024 * 1024)

    res = httpx.post(f"{url}/rag/documents", content=chunks(), headers={
        **auth(tokens["operator"]), "Content-Type": "multipart/form-data; boundary=b"}, timeout=30)
    assert res.status_code == 413 and "larger than" in res.json()["detail"]


def test_binary_content_and_long_names(live):
    url, _port, tokens = live
    h = auth(tokens["operator"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.md", "# hi")
    for name, data in (("notes.md", buf.getvalue()), ("random.txt", np.random.default_rng(1).bytes(4096)),
                       ("fake.pdf", b"# not a pdf at all")):
        res = httpx.post(f"{url}/rag/documents", files={"file": (name, data)}, headers=h, timeout=60)
        assert res.status_code == 422, (name, res.text)
        assert name in res.json()["detail"] and "/tmp" not in res.json()["detail"]
    long = "r" * 300 + ".md"
    res = httpx.post(f"{url}/rag/documents", files={"file": (long, b"# Runbook\n\nRestart the worker.\n")},
                     headers=h, timeout=120)
    assert res.status_code == 201, res.text
    assert len(res.json()["document"]) <= 120 and res.json()["document"].endswith(".md")


def test_huge_pdf_is_refused_and_health_stays_fast(live):
    url, _port, tokens = live
    writer = PdfWriter()
    for _ in range(20_000):
        writer.add_blank_page(72, 72)
    pdf = io.BytesIO()
    writer.write(pdf)
    result = {}

    def upload():
        result["res"] = httpx.post(f"{url}/rag/documents", files={"file": ("huge.pdf", pdf.getvalue())},
                                   headers=auth(tokens["operator"]), timeout=120)

    thread = threading.Thread(target=upload)
    latencies = []
    with httpx.Client(base_url=url, timeout=10) as client:
        client.get("/health")
        thread.start()
        while thread.is_alive():
            t0 = time.perf_counter()
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.01)
    thread.join()
    res = result["res"]
    assert res.status_code == 422 and "20000 pages" in res.json()["detail"]
    p99 = float(np.percentile(latencies, 99))
    print(f"/health during a 20,000-page upload: {len(latencies)} calls, p50 {np.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms")
    assert len(latencies) >= 5 and p99 < 0.1
    stats = httpx.get(f"{url}/rag/stats", headers=auth(tokens["viewer"])).json()
    assert "huge.pdf" not in stats["uploaded"]
