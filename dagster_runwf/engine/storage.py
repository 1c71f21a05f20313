"""Files that are either whole or absent, on a local disk or in object storage.

A location is a local path or an fsspec URL (``s3://bucket/prefix``, ``gs://…``,
``memory://…``). Writes are atomic everywhere: locally a temporary file in the same folder
is fsynced and renamed over the target (then the folder is fsynced, so the rename survives
a power cut); in object storage a single PUT or a completed multipart upload is atomic by
itself. A reader therefore never sees half a file, even after ``kill -9``; what a crash can
leave behind is a temporary file whose name starts with :data:`TEMP_PREFIX`, which readers
skip and :meth:`Storage.remove_stale_temporaries` deletes.

Every :class:`OSError` a :class:`Storage` method raises names the path it was about (a full
disk's bare ``[Errno 28]`` becomes ``[Errno 28] No space left on device: '<path>'``), and
keeps its class, so a ``FileNotFoundError`` is still one.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..errors import ConfigError

TEMP_PREFIX = ".tmp-"


class Storage:
    """A folder on a local disk or in object storage.

    Args:
        location: a local path or an fsspec URL.
        storage_options: passed to fsspec for URLs (credentials, ``endpoint_url``…).
    """

    def __init__(
        self, location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> None:
        text = os.fspath(location)
        if not text.strip():
            raise ConfigError("a storage location must not be empty")
        try:
            fs, root = fsspec.core.url_to_fs(text, **dict(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"cannot open storage location {text!r}: {exc}") from exc
        self.fs: fsspec.AbstractFileSystem = fs
        self.local = isinstance(fs, LocalFileSystem)
        self.root: str = str(Path(root).resolve()) if self.local else root.rstrip("/")
        self.url = text

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def path(self, *parts: str) -> str:
        """A path below the root (``/``-joined, also for local folders)."""
        return "/".join([self.root, *parts])

    # -- writing ----------------------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes | memoryview) -> None:
        """Write a whole file atomically."""
        with self.open_for_write(path) as handle:
            handle.write(data)

    @contextlib.contextmanager
    def open_for_write(self, path: str) -> Iterator[IO[bytes]]:
        """A binary file that appears at ``path`` whole when the block ends without error.

        On an error nothing appears (the partial upload is aborted or the temporary file
        removed) and the error propagates (an :class:`OSError` naming ``path``).
        """
        with naming(path), self._open_for_write(path) as handle:
            yield handle

    @contextlib.contextmanager
    def _open_for_write(self, path: str) -> Iterator[IO[bytes]]:
        if not self.local:
            # Object stores publish an object only when its upload completes; on an error
            # the upload is abandoned instead (a plain `with` would complete it).
            remote = self.fs.open(path, "wb")
            try:
                yield remote
            except BaseException:
                with contextlib.suppress(Exception):
                    remote.discard()
                remote.closed = True  # so that garbage collection does not upload it
                raise
            remote.close()
            return
        target = Path(path)
        _remove_stale(target.parent.glob(f"{TEMP_PREFIX}*-{target.name}"))
        temp = target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}")
        try:
            with _create(temp) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_folder(target.parent)

    # -- reading ----------------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        """A whole file; :class:`FileNotFoundError` when it is gone."""
        with naming(path):
            if self.local:
                return Path(path).read_bytes()
            data: bytes = self.fs.cat_file(path)
            return data

    def list_files(self, folder: str, suffix: str = "") -> list[str]:
        """Files below ``folder`` (recursively), sorted, temporaries skipped; [] if none."""
        with naming(folder):
            return self._list_files(folder, suffix)

    def _list_files(self, folder: str, suffix: str) -> list[str]:
        if self.local:
            found = [p for p in _local_files(folder) if p.endswith(suffix)]
        else:
            self.fs.invalidate_cache(folder)
            try:
                found = [str(p) for p in self.fs.find(folder) if str(p).endswith(suffix)]
            except FileNotFoundError:
                return []
        return sorted(p for p in found if not _name(p).startswith(TEMP_PREFIX))

    def list_folders(self, folder: str) -> list[str]:
        """Immediate sub-folders of ``folder``, sorted; [] if none."""
        with naming(folder):
            return self._list_folders(folder)

    def _list_folders(self, folder: str) -> list[str]:
        if self.local:
            try:
                with os.scandir(folder) as entries:
                    return sorted(e.path for e in entries if e.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                return []
        self.fs.invalidate_cache(folder)
        try:
            entries = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        return sorted(str(e["name"]) for e in entries if e.get("type") == "directory")

    # -- removing ---------------------------------------------------------------------------

    def delete(self, paths: list[str]) -> None:
        """Delete files; ones already gone are fine (another process may have won)."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError), naming(path):
                if self.local:
                    Path(path).unlink()
                else:
                    self.fs.rm_file(path)

    def delete_tree(self, folder: str) -> None:
        """Delete a folder and everything below it; a missing folder is fine."""
        with contextlib.suppress(FileNotFoundError), naming(folder):
            self.fs.rm(folder, recursive=True)

    def move(self, path: str, target: str) -> None:
        """Move a file (creating the target's folder); :class:`FileNotFoundError` when it is
        gone. Locally a rename; in object storage a copy, then a delete."""
        with naming(path):
            if self.local:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
                _fsync_folder(Path(target).parent)
            else:
                self.fs.mv(path, target)

    def remove_stale_temporaries(self, folder: str) -> int:
        """Delete temporary files crashed local writers left below ``folder``; how many."""
        if not self.local:
            return 0
        return _remove_stale(
            Path(p) for p in _local_files(folder) if _name(p).startswith(TEMP_PREFIX)
        )


@contextlib.contextmanager
def naming(path: str) -> Iterator[None]:
    """Re-raise an :class:`OSError` that names no path as one naming ``path`` (of the same
    class when it has an errno: ``OSError(errno, …)`` picks the subclass), the original as
    its cause."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or path in str(exc):
            raise
        named = (
            OSError(exc.errno, exc.strerror or str(exc), path)
            if exc.errno is not None
            else _same_class(exc, f"{exc or type(exc).__name__}: {path!r}")
        )
        raise named from exc


def _same_class(exc: OSError, message: str) -> OSError:
    try:
        return type(exc)(message)
    except Exception:  # a subclass with another constructor
        return OSError(message)


def _local_files(folder: str) -> Iterator[str]:
    """Every file below a local folder. A sub-folder that vanishes during the walk (another
    writer's compaction removing an emptied job folder) is skipped, not an error: os.walk
    ignores folders it cannot list, where Path.rglob raises."""
    for parent, _, names in os.walk(folder):
        for name in names:
            yield os.path.join(parent, name)


STALE_AFTER_S = 3600.0
"""A temporary file untouched this long belongs to a writer that died."""


def _remove_stale(temporaries: Iterable[Path]) -> int:
    cutoff = time.time() - STALE_AFTER_S
    removed = 0
    for temp in temporaries:
        with contextlib.suppress(OSError):
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
                removed += 1
    return removed


def _create(temp: Path) -> IO[bytes]:
    """Open a new file, creating its folder; retried when another process's compaction
    removes the (empty) folder between the two."""
    for _ in range(5):
        temp.parent.mkdir(parents=True, exist_ok=True)
        try:
            return open(temp, "xb")
        except FileNotFoundError:
            continue
    return open(temp, "xb")


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
