"""Verified downloads: a file only gets its final name once its md5 matches.

Data is written to NAME.part, resumed with an HTTP Range request after an interruption, checked,
then renamed with os.replace, so a crash never leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sae.base.errors import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file known by its md5, downloadable from any of its mirrors (tried in order).

    md5 None means its publisher gives no checksum: the file is accepted as downloaded and
    the loader must check its structure instead (only UCI optdigits).
    """

    name: str
    md5: str | None
    urls: tuple[str, ...]


def md5sum(path) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)  # an integrity check, not security
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _up_to_date(path: Path, md5: str) -> bool:
    if not path.exists():
        return False
    got = md5sum(path)
    if md5 is None or got == md5:
        log.info("%s is up to date (md5 %s)", path, md5)
        return True
    log.warning("%s has md5 %s, expected %s: fetching it again", path, got, md5)
    return False


def _download(url: str, part: Path, name: str, timeout: float) -> None:
    """Append url's bytes to part, asking only for what part lacks."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
        if offset and resp.status != 206:  # the server ignored the Range: it sends the whole file
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length else None
        with open(part, "ab" if offset else "wb") as f, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=name, disable=None) as bar:
            while chunk := resp.read(_CHUNK):
                f.write(chunk)
                bar.update(len(chunk))


def fetch(remote: RemoteFile, dest_dir: Path, *, retries: int = 3, timeout: float = 60.0) -> Path:
    """Return dest_dir/remote.name with a verified md5, downloading it if needed.

    Each mirror gets 1 + retries attempts against transient errors (connection failures, timeouts,
    5xx, cut-off transfers), each resuming the .part; a 4xx or a bad md5 moves on to the next mirror.
    """
    dest_dir = Path(dest_dir)
    final, part = dest_dir / remote.name, dest_dir / f"{remote.name}.part"
    if _up_to_date(final, remote.md5):
        return final
    dest_dir.mkdir(parents=True, exist_ok=True)
    last_error = mismatch = None
    for url in remote.urls:
        for attempt in range(retries + 1):
            resumed = part.exists() and part.stat().st_size > 0
            try:
                _download(url, part, remote.name, timeout)
            except urllib.error.HTTPError as e:
                last_error = e
                if e.code == 416:  # the .part is not a prefix of this file (e.g. longer): start over
                    part.unlink(missing_ok=True)
                    continue
                if e.code < 500:
                    break  # 404, 403, ...: this mirror will not serve the file
            except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, IncompleteRead
                last_error = e
            else:
                got = md5sum(part)
                if remote.md5 is None or got == remote.md5:
                    os.replace(part, final)
                    log.info("downloaded %s from %s", final, url)
                    return final
                part.unlink()
                mismatch = f"{remote.name}: md5 mismatch (got {got}, expected {remote.md5}) from {url}"
                if not resumed:
                    break  # a complete fresh download is wrong: this mirror serves a bad file
                log.warning("%s: resumed download is corrupt; downloading from scratch", remote.name)
                continue  # the old .part was stale; no need to wait before starting over
            if attempt < retries:
                log.warning("%s: %s from %s; retry %d of %d", remote.name, last_error, url,
                            attempt + 1, retries)
                time.sleep(min(2 ** attempt, 10))
    if mismatch:
        raise DataError(mismatch)
    raise DataError(f"{remote.name}: could not download from any of: {remote.urls} ({last_error})")


def copy_verified(src: Path, remote: RemoteFile, dest_dir: Path) -> Path:
    """Copy a local file (e.g. a distribution's dataset package) to dest_dir/remote.name, checking md5."""
    dest_dir = Path(dest_dir)
    final, part = dest_dir / remote.name, dest_dir / f"{remote.name}.part"
    if _up_to_date(final, remote.md5):
        return final
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(src, part)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise DataError(f"{remote.name}: cannot copy from {src} ({e})") from e
    got = md5sum(part)
    if got != remote.md5:
        part.unlink()
        raise DataError(f"{remote.name}: md5 mismatch (got {got}, expected {remote.md5}) from {src}")
    os.replace(part, final)
    return final
