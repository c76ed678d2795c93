"""Download the four MNIST IDX files into a local cache, checking each SHA-256.

Importing this module does nothing: no network access and no folders are
created until ``download_mnist`` or ``download_file`` is called.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from digitnet.errors import DownloadError

# SHA-256 and byte size of each file as served by the mirrors below. Taken from
# tensorflow/datasets tensorflow_datasets/url_checksums/mnist.txt (files on
# storage.googleapis.com/cvdf-datasets/mnist/) and identical to the digests in
# pytorch/vision torchvision/prototype/datasets/_builtin/mnist.py.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}

MNIST_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}

# Tried in order. torchvision falls back to the PyTorch S3 copy and TFDS uses the
# CVDF bucket; LeCun's own site comes last because it is often unavailable.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

ProgressCallback = Callable[[int, int | None], None]
LogCallback = Callable[[str], None]

_CHUNK_SIZE = 64 * 1024
_USER_AGENT = "digitnet-mnist-download"
# Errors that mean "this mirror did not work", as opposed to bugs in the caller.
# URLError, HTTPError and timeouts are OSErrors; IncompleteRead and friends are not.
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def default_cache_dir() -> Path:
    """Return $DIGITNET_CACHE if set, else ~/.cache/digitnet/mnist."""
    override = os.environ.get("DIGITNET_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "digitnet" / "mnist"


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def has_sha256(path: Path, sha256: str) -> bool:
    """True if ``path`` is a readable file whose digest is ``sha256``."""
    try:
        return path.is_file() and file_sha256(path) == sha256.lower()
    except OSError:
        return False


def download_file(
    url: str,
    dest: Path,
    sha256: str,
    *,
    timeout: float = 30.0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download ``url`` to ``dest`` if its SHA-256 matches; return ``dest``.

    The bytes go to a temporary file next to ``dest`` that is renamed into place
    only after the digest matches, so ``dest`` is either the old file or the
    complete new one. On any failure, Ctrl-C included, the temporary file is
    removed. Network failures and mismatches raise DownloadError.
    ``timeout`` applies to each socket operation, not to the whole download.
    """
    dest = Path(dest)
    expected = sha256.lower()
    temp_path: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Same folder as dest, so os.replace is an atomic rename on one filesystem.
        temp = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by the with below)
            dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
        )
    except OSError as error:
        raise DownloadError(
            f"{dest.parent}: cannot write the download there ({error.strerror or error}); "
            "set DIGITNET_CACHE or --cache to a writable folder"
        ) from None
    try:
        with temp:
            temp_path = Path(temp.name)
            actual = _stream_into(url, temp, timeout=timeout, progress=progress)
            temp.flush()
            os.fsync(temp.fileno())
        if actual != expected:
            raise DownloadError(
                f"{url}: checksum mismatch (expected sha256 {_short(expected)}, "
                f"got {_short(actual)}); the file was discarded, try again later "
                "or use another mirror"
            )
        os.replace(temp_path, dest)
    except BaseException:
        if temp_path is not None:
            temp_path.unlink(missing_ok=True)
        raise
    return dest


def download_mnist(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    files: Mapping[str, str] = MNIST_FILES,
    timeout: float = 30.0,
    log: LogCallback | None = None,
    progress: Callable[[str], ProgressCallback] | None = None,
) -> Path:
    """Make sure every file in ``files`` is in the cache with the right SHA-256.

    ``progress(name)``, if given, returns the progress callback for that file's download.

    Files already cached with the right digest are kept; missing or damaged ones
    are fetched from ``mirrors`` in order. Returns the cache folder. Raises
    DownloadError if some file cannot be fetched from any mirror.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    _create_cache_dir(cache)
    for name, sha256 in files.items():
        dest = cache / name
        if has_sha256(dest, sha256):
            continue
        _download_from_mirrors(
            name,
            dest,
            sha256,
            mirrors,
            timeout=timeout,
            log=log,
            progress=None if progress is None else progress(name),
        )
    return cache


def _download_from_mirrors(
    name: str,
    dest: Path,
    sha256: str,
    mirrors: Sequence[str],
    *,
    timeout: float,
    log: LogCallback | None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Try each mirror in turn; return ``dest`` from the first that works."""
    last_reason = "no mirrors were given"
    for base_url in mirrors:
        try:
            return download_file(
                _mirror_url(base_url, name), dest, sha256, timeout=timeout, progress=progress
            )
        except DownloadError as error:
            last_reason = str(error)
            if log is not None:
                log(f"could not get {name} from this mirror: {error}")
    raise DownloadError(
        f"could not download {name} from any of {len(mirrors)} mirrors; "
        f"last error: {last_reason}; check your internet connection, "
        f"or copy the file into {dest.parent} yourself"
    )


def _mirror_url(base_url: str, name: str) -> str:
    """Join a mirror's base URL and a file name, with exactly one slash."""
    return f"{base_url.rstrip('/')}/{name}"


def _stream_into(
    url: str,
    sink: IO[bytes],
    *,
    timeout: float,
    progress: ProgressCallback | None,
) -> str:
    """Copy the body of ``url`` into ``sink``; return the SHA-256 of the bytes."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = _content_length(response)
            done = 0
            while chunk := response.read(_CHUNK_SIZE):
                sink.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except _NETWORK_ERRORS as error:
        raise DownloadError(
            f"{url}: download failed ({_describe(error)}); "
            "check your internet connection or try again later"
        ) from error
    return digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The Content-Length header as an int, or None if absent or malformed."""
    try:
        return int(response.headers["Content-Length"])
    except (TypeError, ValueError):
        return None


def _describe(error: BaseException) -> str:
    """A short, single-line reason for a network error."""
    if isinstance(error, urllib.error.HTTPError):
        reason = f"HTTP {error.code} {error.reason}"
    elif isinstance(error, urllib.error.URLError):
        reason = str(error.reason)
    else:
        reason = str(error) or type(error).__name__
    return " ".join(reason.split())


def _short(digest: str) -> str:
    """First 12 hex characters: enough to tell digests apart in a message."""
    return f"{digest[:12]}..."


def _create_cache_dir(cache: Path) -> None:
    """Create the cache folder, turning OS errors into an actionable message."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"cannot create cache folder {cache} ({_describe(error)}); "
            "set DIGITNET_CACHE to a writable folder"
        ) from error
