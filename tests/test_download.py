"""Tests for digitnet.download against a real HTTP server on 127.0.0.1.

The server serves small fake .gz files from tmp_path under /mirror1/ and
/mirror2/, so two mirrors can be made to fail in different ways. No test
touches the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from digitnet.download import (
    MNIST_FILES,
    MNIST_MIRRORS,
    MNIST_SIZES,
    default_cache_dir,
    download_file,
    download_mnist,
)
from digitnet.errors import DownloadError

FILE_NAMES = tuple(MNIST_FILES)


@dataclass
class LocalServer:
    """A running test server: where its files live and what it was asked for."""

    root: Path
    base_url: str
    requested_paths: list[str] = field(default_factory=list)

    def mirror_url(self, mirror: str) -> str:
        return f"{self.base_url}/{mirror}/"

    def publish(self, mirror: str, payloads: dict[str, bytes]) -> None:
        folder = self.root / mirror
        folder.mkdir(parents=True, exist_ok=True)
        for name, payload in payloads.items():
            (folder / name).write_bytes(payload)

    def requests_for(self, name: str) -> list[str]:
        return [path for path in self.requested_paths if path.endswith("/" + name)]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that timed out and hung up is expected in one test; stay silent.
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    """Serve tmp_path/www on an ephemeral port; /stall/ hangs until teardown."""
    root = tmp_path / "www"
    root.mkdir()
    requested_paths: list[str] = []
    release_stalled = threading.Event()

    class CountingHandler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            requested_paths.append(self.path)
            if self.path.startswith("/stall/"):
                release_stalled.wait(timeout=5)
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = _QuietServer(("127.0.0.1", 0), CountingHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield LocalServer(root, f"http://{host}:{port}", requested_paths)
    finally:
        release_stalled.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def fake_payloads(tag: str = "good") -> dict[str, bytes]:
    """Small distinct gzip payloads, one per MNIST file name; mtime=0 keeps them stable."""
    return {name: gzip.compress(f"{tag} {name} ".encode() * 50, mtime=0) for name in FILE_NAMES}


def digests_of(payloads: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(payload).hexdigest() for name, payload in payloads.items()}


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens, so connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_downloads_every_file_and_returns_the_cache_dir(
    server: LocalServer, tmp_path: Path
) -> None:
    payloads = fake_payloads()
    server.publish("mirror1", payloads)
    cache = tmp_path / "cache" / "nested"

    result = download_mnist(
        cache, mirrors=(server.mirror_url("mirror1"),), files=digests_of(payloads)
    )

    assert result == cache
    assert sorted(os.listdir(cache)) == sorted(FILE_NAMES)
    for name, payload in payloads.items():
        assert (cache / name).read_bytes() == payload


def test_cached_files_are_not_downloaded_again(server: LocalServer, tmp_path: Path) -> None:
    payloads = fake_payloads()
    server.publish("mirror1", payloads)
    mirrors = (server.mirror_url("mirror1"),)
    cache = tmp_path / "cache"

    download_mnist(cache, mirrors=mirrors, files=digests_of(payloads))
    assert len(server.requested_paths) == len(FILE_NAMES)
    download_mnist(str(cache), mirrors=mirrors, files=digests_of(payloads))

    assert len(server.requested_paths) == len(FILE_NAMES)


def test_corrupted_cached_file_is_downloaded_again(server: LocalServer, tmp_path: Path) -> None:
    payloads = fake_payloads()
    server.publish("mirror1", payloads)
    mirrors = (server.mirror_url("mirror1"),)
    cache = tmp_path / "cache"
    download_mnist(cache, mirrors=mirrors, files=digests_of(payloads))
    damaged = FILE_NAMES[0]
    (cache / damaged).write_bytes(b"truncated")

    download_mnist(cache, mirrors=mirrors, files=digests_of(payloads))

    assert (cache / damaged).read_bytes() == payloads[damaged]
    assert len(server.requests_for(damaged)) == 2
    assert all(len(server.requests_for(name)) == 1 for name in FILE_NAMES[1:])


def test_missing_file_on_first_mirror_falls_back_to_second(
    server: LocalServer, tmp_path: Path
) -> None:
    payloads = fake_payloads()
    server.publish("mirror2", payloads)
    notes: list[str] = []

    download_mnist(
        tmp_path / "cache",
        mirrors=(server.mirror_url("mirror1"), server.mirror_url("mirror2")),
        files=digests_of(payloads),
        log=notes.append,
    )

    for name, payload in payloads.items():
        assert (tmp_path / "cache" / name).read_bytes() == payload
    assert len(notes) == len(FILE_NAMES)
    assert all("404" in note and "/mirror1/" in note and "\n" not in note for note in notes)


def test_wrong_bytes_on_first_mirror_fall_back_to_second(
    server: LocalServer, tmp_path: Path
) -> None:
    payloads = fake_payloads()
    server.publish("mirror1", fake_payloads("tampered"))
    server.publish("mirror2", payloads)
    notes: list[str] = []

    download_mnist(
        tmp_path / "cache",
        mirrors=(server.mirror_url("mirror1"), server.mirror_url("mirror2")),
        files=digests_of(payloads),
        log=notes.append,
    )

    for name, payload in payloads.items():
        assert (tmp_path / "cache" / name).read_bytes() == payload
    assert all("checksum mismatch" in note for note in notes)
    assert len(notes) == len(FILE_NAMES)


def test_unreachable_first_mirror_falls_back_to_second(server: LocalServer, tmp_path: Path) -> None:
    payloads = fake_payloads()
    server.publish("mirror2", payloads)

    download_mnist(
        tmp_path / "cache",
        mirrors=(closed_port_url(), server.mirror_url("mirror2")),
        files=digests_of(payloads),
    )

    assert sorted(os.listdir(tmp_path / "cache")) == sorted(FILE_NAMES)


def test_all_mirrors_failing_raises_one_line_error_and_leaves_no_files(
    server: LocalServer, tmp_path: Path
) -> None:
    payloads = fake_payloads()
    server.publish("mirror2", fake_payloads("tampered"))
    cache = tmp_path / "cache"

    with pytest.raises(DownloadError) as caught:
        download_mnist(
            cache,
            mirrors=(server.mirror_url("mirror1"), server.mirror_url("mirror2")),
            files=digests_of(payloads),
        )

    message = str(caught.value)
    assert "\n" not in message
    assert FILE_NAMES[0] in message
    assert "checksum mismatch" in message  # the last mirror's reason
    assert os.listdir(cache) == []


def test_no_mirrors_raises_download_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no mirrors"):
        download_mnist(tmp_path, mirrors=(), files={"x.gz": "0" * 64})


def test_download_file_checksum_mismatch_leaves_nothing_behind(
    server: LocalServer, tmp_path: Path
) -> None:
    server.publish("mirror1", {"data.gz": b"served bytes"})
    dest = tmp_path / "cache" / "data.gz"
    url = server.mirror_url("mirror1") + "data.gz"
    expected = "ab" * 32

    with pytest.raises(DownloadError) as caught:
        download_file(url, dest, expected)

    message = str(caught.value)
    assert url in message and "abababababab" in message
    assert hashlib.sha256(b"served bytes").hexdigest()[:12] in message
    assert "\n" not in message
    assert not dest.exists()
    assert os.listdir(dest.parent) == []


def test_failed_download_does_not_clobber_existing_file(
    server: LocalServer, tmp_path: Path
) -> None:
    good = b"the good copy"
    dest = tmp_path / "cache" / "data.gz"
    dest.parent.mkdir()
    dest.write_bytes(good)
    server.publish("mirror1", {"data.gz": b"something else"})
    sha_of_good = hashlib.sha256(good).hexdigest()

    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(server.mirror_url("mirror1") + "data.gz", dest, sha_of_good)
    with pytest.raises(DownloadError, match="404"):
        download_file(server.mirror_url("mirror1") + "absent.gz", dest, sha_of_good)

    assert dest.read_bytes() == good
    assert os.listdir(dest.parent) == ["data.gz"]


def test_interrupted_download_removes_the_temp_file(server: LocalServer, tmp_path: Path) -> None:
    payload = b"x" * 200_000
    server.publish("mirror1", {"big.gz": payload})
    dest = tmp_path / "cache" / "big.gz"

    def interrupt(done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_file(
            server.mirror_url("mirror1") + "big.gz",
            dest,
            hashlib.sha256(payload).hexdigest(),
            progress=interrupt,
        )

    assert os.listdir(dest.parent) == []


def test_timeout_raises_download_error_and_leaves_nothing(
    server: LocalServer, tmp_path: Path
) -> None:
    dest = tmp_path / "cache" / "slow.gz"

    with pytest.raises(DownloadError, match="download failed"):
        download_file(f"{server.base_url}/stall/slow.gz", dest, "0" * 64, timeout=0.2)

    assert os.listdir(dest.parent) == []


def test_progress_reports_bytes_done_and_total(server: LocalServer, tmp_path: Path) -> None:
    payload = b"y" * 150_000
    server.publish("mirror1", {"data.gz": payload})
    calls: list[tuple[int, int | None]] = []

    download_file(
        server.mirror_url("mirror1") + "data.gz",
        tmp_path / "data.gz",
        hashlib.sha256(payload).hexdigest().upper(),  # case must not matter
        progress=lambda done, total: calls.append((done, total)),
    )

    assert calls[-1] == (len(payload), len(payload))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_default_cache_dir_honours_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIGITNET_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"

    monkeypatch.delenv("DIGITNET_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "digitnet" / "mnist"


def test_importing_creates_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "DIGITNET_CACHE": str(tmp_path / "cache")}
    repo_root = Path(__file__).resolve().parents[1]

    subprocess.run(
        [sys.executable, "-c", "import digitnet.download"],
        cwd=repo_root,
        env=env,
        check=True,
        timeout=30,
    )

    assert os.listdir(tmp_path) == []


def test_mnist_constants_are_well_formed() -> None:
    assert set(MNIST_FILES) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in MNIST_FILES.values())
    assert set(MNIST_SIZES) == set(MNIST_FILES)
    assert MNIST_MIRRORS
    assert all(re.fullmatch(r"https?://\S+/", url) for url in MNIST_MIRRORS)


def test_download_mnist_reports_each_files_progress(server: LocalServer, tmp_path: Path) -> None:
    payloads = fake_payloads()
    server.publish("mirror1", payloads)
    seen: dict[str, list[tuple[int, int | None]]] = {}

    def progress_for(name: str):
        seen[name] = []
        return lambda done, total: seen[name].append((done, total))

    download_mnist(
        tmp_path / "cache",
        mirrors=(server.mirror_url("mirror1"),),
        files=digests_of(payloads),
        progress=progress_for,
    )

    assert sorted(seen) == sorted(FILE_NAMES)
    for name, payload in payloads.items():
        assert seen[name][-1][0] == len(payload)
