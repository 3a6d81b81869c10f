"""The download cache: where published data files live, and fetching them with a checksum and atomic rename."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from nas.data.formats import DatasetError

CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class Resource:
    """One published file: its name in the cache folder, its public URL and its published MD5."""

    filename: str
    url: str
    md5: str


def default_data_dir() -> Path:
    """$NAS_DATA_DIR, else $XDG_CACHE_HOME/nas/data, else ~/.cache/nas/data."""
    if os.environ.get("NAS_DATA_DIR"):
        return Path(os.environ["NAS_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "nas" / "data"


def md5sum(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(resource: Resource, directory: Path, *, download: bool, verify: bool = True) -> Path:
    """Path of resource in directory, downloading it if absent; raises DatasetError if unavailable or corrupt.

    verify=False skips the checksum of a file already present (a user's own archive); downloads always verify.
    """
    path = directory / resource.filename
    if path.is_file():
        if verify:
            try:
                found = md5sum(path)
            except OSError as err:
                raise DatasetError(f"{path}: cannot read ({err.strerror})") from None
            if found != resource.md5:
                raise DatasetError(f"{path}: checksum mismatch (MD5 {found}, expected {resource.md5}): the file is "
                                   f"corrupt or incomplete; delete it so it is downloaded again, or replace it by "
                                   f"hand with {resource.url}")
        return path
    if not download:
        raise DatasetError(f"{path} not found and downloading is off: download {resource.url} and place it there "
                           f"by hand, or allow downloading")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetError(f"cannot create data folder {directory} ({err.strerror}); choose another data dir "
                           f"(--data-dir or $NAS_DATA_DIR)") from None
    _download(resource, path)
    return path


def _download(resource: Resource, path: Path) -> None:
    """Stream resource.url to a temp file beside path, check its MD5, then rename it into place."""
    # A temp file in the same folder makes the final rename atomic: path is either absent or complete.
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(resource.url, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, leave=False) as progress:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.update(len(chunk))
        if digest.hexdigest() != resource.md5:
            raise DatasetError(f"download of {resource.url} is corrupt or incomplete (MD5 {digest.hexdigest()}, "
                               f"expected {resource.md5}); try again, or place the file at {path} by hand")
        os.replace(temp, path)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise DatasetError(f"cannot download {resource.url} ({reason}): check the connection, or download it "
                           f"elsewhere and place it at {path} by hand") from None
    finally:
        temp.unlink(missing_ok=True)
