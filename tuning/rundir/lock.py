"""One process per run directory: an exclusive lock on ``<run_dir>/.lock``.

Two searches of one run (started twice, or rerun while the first still trains) would
train the same trials and clash on their checkpoints; two finalizes would mix their
TensorBoard logs; a finalize during a search would read a moving ``trials.csv``. So the
search (single or chief), the finalizer and the ablation each hold this lock for as long
as the command runs, and a second process is refused with one line naming the holder.
Distributed workers take no lock: they write trial folders on the chief's behalf.

``fcntl.flock`` is tied to the open file, so the kernel drops the lock when its process
dies, however it dies: a SIGKILLed search never blocks the rerun (the file it leaves is
taken over; what a lock file says counts only while it is locked). On Linux, flock on
NFS is carried by NFS locks, so a chief on a shared filesystem is covered too. The lock
is not inherited across exec (O_CLOEXEC); nothing here forks while holding it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import socket
import sys
from pathlib import Path

from tuning.errors import ProjectError

try:
    import fcntl
except ImportError:  # not POSIX (Windows): no lock; a second process is not refused there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


def current_command() -> str:
    """This process's command line as the user typed it (``python -m tuning.search ...``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None else [Path(sys.argv[0]).name]
    return shlex.join([*head, *sys.argv[1:]])


def describe_holder(text: str) -> str:
    """``process 1234 on host X (command) since 12:03`` from a lock file's contents."""
    try:
        holder = json.loads(text)
        since = _dt.datetime.fromisoformat(holder["since"])
        command = str(holder["command"])
        pid, host = int(holder["pid"]), str(holder["host"])
    except (ValueError, TypeError, KeyError):
        # Locked a moment ago, its holder not written yet (or written by someone else).
        return "another process"
    if len(command) > 120:
        command = command[:117] + "..."
    when = since.strftime("%H:%M" if since.date() == _dt.date.today() else "%Y-%m-%d %H:%M")
    return f"process {pid} on host {host} ({command}) since {when}"


class RunLock:
    """``with RunLock(run_dir, what="search"):`` the run directory is this process's.

    The lock file exists only while it is held (removed on release, still locked), so a
    refused or failed command leaves no trace; one left by a killed process is simply
    taken over. ``create``: make the run directory if it does not exist (and remove it on
    release if it is still empty). Without it a missing directory is not locked: there is
    nothing in it to protect, and the caller reports it missing in its own words.
    """

    def __init__(self, run_dir: Path, what: str, create: bool = True) -> None:
        self.run_dir, self.what, self.create = Path(run_dir), what, create
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.made_dir = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise ProjectError naming the process that holds it."""
        if fcntl is None or self.fd is not None:
            return
        for _ in range(100):  # another process may remove the file or folder meanwhile
            if not self.run_dir.is_dir():
                if not self.create:
                    return
                self._make_dir()
            fd = self._open()
            if fd is None:
                continue
            if not self._lock(fd):
                return  # no locks on this filesystem: warned, go on without
            if self._is_current(fd):
                self.fd = fd
                self._write_holder()
                return
            os.close(fd)  # locked a file its holder removed on release: take the new one
        raise ProjectError(f"could not lock {self.path}: it keeps disappearing")

    def release(self) -> None:
        """Remove the lock file (still holding it), then drop the lock by closing it."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            self.path.unlink(missing_ok=True)
            if self.made_dir:
                self.run_dir.rmdir()  # only if nothing was written into it
        except OSError:
            pass  # a folder with results in it stays, and so may a read-only lock file
        finally:
            os.close(fd)  # closing the last descriptor of the file drops the flock

    def _make_dir(self) -> None:
        try:
            self.run_dir.mkdir(parents=True)
            self.made_dir = True
        except FileExistsError:
            if not self.run_dir.is_dir():
                raise ProjectError(f"{self.run_dir} exists and is not a folder") from None
        except OSError as exc:
            raise ProjectError(
                f"run directory {self.run_dir} is not writable ({exc.strerror})"
            ) from None

    def _open(self) -> int | None:
        """The lock file, created if need be; None if its folder vanished meanwhile."""
        # O_NOFOLLOW: a .lock planted as a symlink must not make us write elsewhere.
        flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for mode in (os.O_RDWR, os.O_RDONLY):  # another user's file: read-only locks as well
            try:
                return os.open(self.path, flags | mode, 0o666)  # less the umask: shared
            except FileNotFoundError:
                return None
            except PermissionError:
                continue
            except OSError as exc:
                what = f"cannot open the lock file {self.path} ({exc.strerror})"
                raise ProjectError(what) from None
        raise ProjectError(
            f"run directory {self.run_dir} is not writable (cannot create its {LOCK_NAME})"
        )

    def _lock(self, fd: int) -> bool:
        """flock it; False where the filesystem has no locks (warned); refused if held."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            holder = describe_holder(self._read(fd))
            os.close(fd)
            raise ProjectError(
                f"{self.run_dir} is in use by {holder}; wait for it to finish, or stop it"
            ) from None
        except OSError as exc:  # ENOLCK, EOPNOTSUPP
            os.close(fd)
            print(
                f"warning: cannot lock {self.path} ({exc.strerror}); make sure no other "
                f"process uses {self.run_dir} during this {self.what}",
                file=sys.stderr,
                flush=True,
            )
            return False

    def _is_current(self, fd: int) -> bool:
        """Whether the file we locked is still the one at the lock's path."""
        try:
            here = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    @staticmethod
    def _read(fd: int) -> str:
        try:
            return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _write_holder(self) -> None:
        """Who holds the lock, for the message a second process gets (written once held)."""
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": current_command(),
            "what": self.what,
            "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        data = (json.dumps(holder) + "\n").encode("utf-8")
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        except OSError:
            pass  # read-only lock file: we hold the lock, only the holder's name is missing
