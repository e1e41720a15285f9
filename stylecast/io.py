"""Writing outputs: the one rule every stylecast command follows.

- A file appears whole or not at all: it is written to a temp file in its own folder and renamed
  over the target (`atomic_path`, `atomic_write_bytes`). A temp file in another folder (/tmp)
  would be *copied* across file systems, which is not atomic at the destination.
- A write that fails (full disk, file-size limit, permission, a path through a regular file) is a
  UserError naming the file and the OS's reason: one line, exit 2, no traceback, temp file gone.
- Existing outputs are not overwritten unless the user says so (`--force`), and a run that fails
  removes every file it wrote (`RunOutputs`), so nothing partial is left.

Temp files are named `.<name>.<pid>.<random>.tmp`: a process killed with SIGKILL cannot clean up
after itself, and the pid lets the next run tell its leftovers from a live writer's
(`remove_stale_temp_files`).

numpy/Pillow-free and torch-free: the inference path and the torch commands both use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from stylecast.errors import UserError

TEMP_SUFFIX = ".tmp"
# .<name>.<pid>.<random>.tmp (and .<name>.<pid>.tmp, what `stylecast train` wrote before)
_TEMP_NAME = re.compile(r"^\..+?\.(\d+)(\.[a-z0-9_]+)?\.tmp$")


def write_error(path: str | os.PathLike, exc: OSError, doing: str = "cannot write") -> UserError:
    """The one-line message for an OS-level write failure: the file and the OS's reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return UserError(f"{path}: {doing}: {reason}")


def _default_mode() -> int:
    # mkstemp creates 0600; an output gets the mode a plain open() would give (0666 minus umask).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block ends normally, rename it over `path`.

    Any error in the block or the rename removes the temp file; an OSError becomes a UserError
    naming `path` (the block's I/O is writing this output, whatever library does it: Pillow,
    torch.save, onnx.save).
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def make_folder(folder: str | os.PathLike) -> list[Path]:
    """Create `folder` and missing parents; returns the folders created (deepest last), so a
    failed run can remove them. A parent that is a regular file (ENOTDIR), a permission or a
    full disk is a UserError naming the folder."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{folder}: exists and is not a folder") from None
    except OSError as exc:
        raise write_error(folder, exc, "cannot create the folder") from None
    return missing


def check_folder(path: str | os.PathLike, what: str = "output") -> None:
    """Fail before any work when the folder `path` is to be written in does not exist."""
    parent = Path(path).parent
    if not parent.is_dir():
        raise UserError(f"{what} {path}: folder {parent} does not exist")


def check_new(
    paths: Iterable[str | os.PathLike],
    force: bool,
    *,
    earlier: Iterable[str | os.PathLike] = (),
    inputs: Iterable[str | os.PathLike] = (),
) -> None:
    """The overwrite rule: an existing output is refused unless `force` (--force); an input
    file never is overwritten, forced or not.

    `earlier`: files an earlier run of the same command left that this run would not overwrite
    but would leave beside its own (progress images of another --save-every, a report folder's
    images of other photos): refused like the outputs, and removed when forced, so the outputs
    on disk are all of one run."""
    paths, earlier = [Path(p) for p in paths], [Path(p) for p in earlier]
    sources = {Path(p).resolve() for p in inputs if isinstance(p, (str, os.PathLike))}
    for p in paths:
        if p.resolve() in sources:
            raise UserError(f"{p}: is an input file; refusing to overwrite it")
    if not force:
        for p in [*paths, *earlier]:
            if p.exists():
                raise UserError(f"{p}: already exists (use --force to overwrite)")
        return
    for p in earlier:
        if p.is_file():
            p.unlink()


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove temp files (`.<name>.<pid>.<random>.tmp`) left in `folder` by processes that no
    longer run (a kill -9 mid-write); a live process's are kept. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP_NAME.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m[1])):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunOutputs:
    """The files one run writes, written atomically; if the run fails, all of them are removed
    (and the folders it created, when left empty), so a failed run leaves nothing partial.

        with RunOutputs() as outputs:
            outputs.folder(out_dir)
            outputs.write_bytes(out_dir / "a.json", data)
    """

    def __init__(self) -> None:
        self.written: list[Path] = []
        self.created: list[Path] = []

    def folder(self, folder: str | os.PathLike) -> Path:
        self.created += make_folder(folder)
        return Path(folder)

    @contextlib.contextmanager
    def path(self, path: str | os.PathLike) -> Iterator[Path]:
        """`atomic_path` that records the file for `rollback`."""
        with atomic_path(path) as tmp:
            yield tmp
        self.written.append(Path(path))

    def write_bytes(self, path: str | os.PathLike, data: bytes) -> Path:
        atomic_write_bytes(path, data)
        self.written.append(Path(path))
        return Path(path)

    def rollback(self) -> None:
        for p in reversed(self.written):
            p.unlink(missing_ok=True)
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        self.written.clear()
        self.created.clear()

    def __enter__(self) -> "RunOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.rollback()
