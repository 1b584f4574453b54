"""Downloading one file safely: mirrors in turn, resume after an interruption, checksum, atomic rename.

The file grows as `<destination>.part`; only once its checksum matches is it renamed (os.replace) to
its final name, so a reader never sees half a file. An interrupted transfer keeps the part and asks
the server for the rest (an HTTP Range request); a server that ignores Range sends it all again.
A checksum mismatch deletes the part. Nothing here prints: pass `progress(done, total)` to show one.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zlib
from typing import Callable, Sequence

from minicnn import __version__
from minicnn.data.errors import DataFormatError, DownloadError

Progress = Callable[[int, "int | None"], None]
CHUNK = 1 << 16
_verified: dict[tuple, tuple[str, int]] = {}


def content_digest(path: str | os.PathLike, algorithm: str = "sha256", decompress: bool = True) -> tuple[str, int]:
    """(hex digest, size) of a file's content, gunzipped first when it is gzip and `decompress` is set.

    Hashing the decompressed bytes accepts a copy that was gzipped again (Debian's, say) or stored
    raw. Results are remembered per file (device, inode, size, mtime), so a file is hashed once per
    process, also across the atomic rename that moves a finished download into place.
    """
    path = os.fspath(path)
    stat = os.stat(path)
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, algorithm, decompress)
    if key not in _verified:
        digest, size = hashlib.new(algorithm), 0
        with open(path, "rb") as raw:
            compressed = decompress and raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if compressed else raw
            try:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            except EOFError as error:
                raise DataFormatError(f"{path}: truncated gzip stream (the end of its data is missing)") from error
            except (gzip.BadGzipFile, zlib.error) as error:
                raise DataFormatError(f"{path}: corrupt gzip data ({error})") from error
        _verified[key] = (digest.hexdigest(), size)
    return _verified[key]


def check_file(path: str | os.PathLike, sha256: str | None = None, md5: str | None = None,
               size: int | None = None) -> str | None:
    """None if the file matches; else why not. sha256 and size are of the (decompressed) content, md5
    of the file's bytes as stored (the form a publisher lists for an archive); size alone is checked
    against the file as stored."""
    if size is not None and sha256 is None and os.path.getsize(path) != size:
        return f"{os.path.getsize(path):,} bytes, expected {size:,}"
    if sha256 is not None:
        try:
            digest, content_size = content_digest(path, "sha256")
        except DataFormatError as error:
            return str(error)
        if size is not None and content_size != size:
            return f"{content_size:,} bytes of content, expected {size:,}"
        if digest != sha256.lower():
            return f"sha256 of the content is {digest}, expected {sha256}"
    if md5 is not None:
        digest, _ = content_digest(path, "md5", decompress=False)
        if digest != md5.lower():
            return f"md5 is {digest}, expected {md5}"
    return None


def _fetch(url: str, part: str, progress: Progress | None, timeout: float) -> None:
    """Append the rest of `url` to `part` (or start over when the server ignores the Range asked for)."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"User-Agent": f"minicnn/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part is already whole, or longer than the file: start over
            error.close()
            os.remove(part)
            return _fetch(url, part, progress, timeout)
        raise
    with response:
        content_range = response.headers.get("Content-Range", "")
        resumed = have and response.status == 206 and content_range.startswith(f"bytes {have}-")
        if have and response.status == 206 and not resumed:  # some other range: start over
            os.remove(part)
            return _fetch(url, part, progress, timeout)
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if progress is not None:
            progress(have, total)
        with open(part, "ab" if resumed else "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                have += len(chunk)
                if progress is not None:
                    progress(have, total)
    if total is not None and have < total:
        raise http.client.IncompleteRead(b"", total - have)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"unreachable ({error.reason})"
    if isinstance(error, http.client.IncompleteRead):
        return "the connection closed before the end of the file"
    return f"{type(error).__name__}: {error}"


def download(urls: str | Sequence[str], destination: str | os.PathLike, *, sha256: str | None = None,
             md5: str | None = None, size: int | None = None, progress: Progress | None = None,
             timeout: float = 30.0, attempts: int = 3) -> str:
    """Fetch the first URL that works into `destination`, verified, and return its path.

    sha256/size: of the content (gunzipped when the file is gzip); md5: of the file as served.
    An attempt that received data but was cut short is resumed, up to `attempts` times per URL;
    a URL that fails otherwise, or whose file does not match, gives way to the next one.
    Raises DownloadError naming every URL and why it failed.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    destination = os.fspath(destination)
    os.makedirs(os.path.dirname(destination) or ".", exist_ok=True)
    part = destination + ".part"
    failures = []
    for url in urls:
        for attempt in range(1, attempts + 1):
            before = os.path.getsize(part) if os.path.exists(part) else 0
            try:
                _fetch(url, part, progress, timeout)
            except (OSError, http.client.HTTPException) as error:
                grew = os.path.exists(part) and os.path.getsize(part) > before
                if grew and attempt < attempts:
                    continue
                failures.append(f"{url}: {_reason(error)}" + (f" (after {attempt} attempts)" if attempt > 1 else ""))
                break
            problem = check_file(part, sha256=sha256, md5=md5, size=size)
            if problem is None:
                os.replace(part, destination)
                return destination
            os.remove(part)
            failures.append(f"{url}: checksum mismatch: {problem}; the download was deleted")
            break
    raise DownloadError(os.path.basename(destination), failures)
