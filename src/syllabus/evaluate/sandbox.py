"""Run untrusted Python (model-written code plus its tests) in a separate, limited process.

Layers, outermost first (each one alone stops the common accidents; together they stop the
deliberate ones a language model is likely to produce):

1. **Process**: ``sys.executable -I`` (isolated mode: no user site, no PYTHON* variables) in a new
   session, so the whole process group can be killed; a wall-clock timeout kills it (SIGKILL).
2. **Folder**: a fresh temporary working folder, also HOME and TMPDIR, deleted afterwards. stdout and
   stderr go to files the child cannot reach by name (bounded by the file-size limit).
3. **Resource limits** (``setrlimit``): address space (``memory_bytes``), file size, CPU seconds,
   open files, no core dumps.
4. **Identity** (when the caller is root, the usual case in containers): the child moves to a
   network namespace of its own (no interfaces but a downed loopback) and a mount namespace in which
   every mount is read-only except its working folder, and then drops to an unused
   uid, unique per run. The new uid makes ``RLIMIT_NPROC`` count (root is exempt from it), so a fork
   bomb stops at ``processes``, and makes the rest of the file system read-only to the code
   (it keeps only ``CAP_DAC_READ_SEARCH`` so the interpreter, whose files may sit in a private home,
   can still import). Afterwards every process with that uid is killed, catching anything that left
   the process group.
5. **Python guards** in the child before the code runs: ``socket`` constructors, ``fork``/``exec``/
   ``spawn``/``system``/``kill`` and ``subprocess.Popen`` raise, ``ctypes`` cannot be imported, and
   ``open`` refuses to write outside the working folder.

Not contained: reading files the caller could read; CPU/memory pressure up to the limits; when not
root, layers 4's namespace and uid (the Python guards and process-group kill remain).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    timeout: float = 10.0  # wall-clock seconds
    memory_bytes: int = 1 << 30
    file_bytes: int = 10 << 20
    processes: int = 8  # per sandbox uid (threads count); effective only when started as root
    open_files: int = 64


@dataclass(frozen=True)
class Outcome:
    status: str  # "passed", "failed" or "timeout"
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# Executed by the child interpreter; argv: program path, limits JSON, sandbox uid (or -1).
LAUNCHER = r'''
import builtins, ctypes, io, json, os, resource, sys
program, limits, uid = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
def limit(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass
limit(resource.RLIMIT_AS, limits["memory_bytes"])
limit(resource.RLIMIT_FSIZE, limits["file_bytes"])
limit(resource.RLIMIT_CPU, int(limits["timeout"]) + 2)
limit(resource.RLIMIT_NOFILE, limits["open_files"])
limit(resource.RLIMIT_CORE, 0)
# Modules model-written code commonly imports, loaded while the interpreter's files are readable.
for name in ("math", "cmath", "re", "string", "collections", "collections.abc", "itertools", "functools",
             "heapq", "bisect", "typing", "hashlib", "random", "statistics", "fractions", "decimal", "copy",
             "operator", "json", "datetime", "time", "array", "numbers", "textwrap", "unicodedata", "struct",
             "enum", "dataclasses", "traceback", "linecache", "subprocess", "socket", "shutil", "tempfile",
             "contextlib", "abc", "io", "codecs", "encodings.idna", "calendar", "pprint", "zlib", "base64",
             "binascii", "locale", "warnings", "weakref", "types", "inspect", "ast"):
    try:
        __import__(name)
    except Exception:
        pass
if uid >= 0 and os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare(0x40000000)  # CLONE_NEWNET: a network namespace with nothing in it
    if libc.unshare(0x00020000) == 0:  # CLONE_NEWNS: a private mount table, every mount read-only but ours
        libc.mount(None, b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE
        here = os.getcwd().encode()
        if libc.mount(here, here, None, 0x1000, None) == 0:  # MS_BIND the folder onto itself: stays writable
            os.chdir(here)
        for line in open("/proc/self/mountinfo"):
            point = line.split()[4].encode().decode("unicode_escape").encode()
            if point != here:
                libc.mount(None, point, None, 0x20 | 0x1000 | 0x1, None)  # MS_REMOUNT | MS_BIND | MS_RDONLY
    libc.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS across setuid
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    data = (Data * 2)()
    data[0].effective = data[0].permitted = 1 << 2  # CAP_DAC_READ_SEARCH only
    libc.capset(ctypes.byref(Header(0x20080522, 0)), data)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    limit(resource.RLIMIT_NPROC, limits["processes"])
def refuse(*args, **kwargs):
    raise PermissionError("not allowed in the sandbox")
import socket, subprocess, posix, _socket
for mod in (socket, _socket):
    for attr in ("socket", "socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo"):
        if hasattr(mod, attr):
            setattr(mod, attr, refuse)
subprocess.Popen = refuse
for mod in (os, posix):
    for attr in dir(mod):
        if attr in ("fork", "forkpty", "system", "popen", "kill", "killpg", "posix_spawn", "posix_spawnp",
                    "register_at_fork", "setsid", "putenv", "unsetenv") or attr.startswith(("exec", "spawn")):
            setattr(mod, attr, refuse)
for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
    sys.modules[name] = None
sys.modules["ctypes"] = sys.modules["_ctypes"] = None
home = os.path.realpath(os.getcwd())
real_open = builtins.open
def guarded_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
        path = os.path.realpath(os.fsdecode(file))
        if path != home and not path.startswith(home + os.sep):
            raise PermissionError(f"writing outside the sandbox folder: {path}")
    return real_open(file, mode, *args, **kwargs)
builtins.open = io.open = guarded_open
real_os_open = os.open
def guarded_os_open(path, flags, *args, **kwargs):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
        full = os.path.realpath(os.fsdecode(path))
        if full != home and not full.startswith(home + os.sep):
            raise PermissionError(f"writing outside the sandbox folder: {full}")
    return real_os_open(path, flags, *args, **kwargs)
os.open = posix.open = guarded_os_open
with io.FileIO(program) as f:
    source = f.read().decode("utf-8")
namespace = {"__name__": "__main__", "__builtins__": builtins}
exec(compile(source, "program.py", "exec"), namespace)
'''

sandbox_uids = itertools.count()


def next_uid() -> int:
    """An unused uid for one run: above the ranges distributions hand out, unique per process and run."""
    return 1_000_000 + (os.getpid() % 20_000) * 100 + next(sandbox_uids) % 100


def run_python(source: str, limits: Limits = Limits()) -> Outcome:
    """Run ``source`` as a script in the sandbox; ``passed`` when it exits with status 0 in time."""
    workdir = Path(tempfile.mkdtemp(prefix="syllabus-sandbox-"))
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    uid = next_uid() if as_root else -1
    program = workdir / "program.py"
    program.write_text(source, encoding="utf-8")
    if as_root:
        os.chown(workdir, uid, uid)
    os.chmod(workdir, 0o700)
    env = {"HOME": str(workdir), "TMPDIR": str(workdir), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    started = time.monotonic()
    status, returncode = "failed", None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", LAUNCHER, str(program), json.dumps(asdict(limits)), str(uid)],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True, close_fds=True)
        try:
            returncode = proc.wait(timeout=limits.timeout)
            status = "passed" if returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            kill_group(proc.pid)
            if as_root:
                kill_uid(uid)
            proc.wait()
            shutil.rmtree(workdir, ignore_errors=True)
        seconds = time.monotonic() - started
        stdout, stderr = tail(out), tail(err)
    return Outcome(status, returncode, stdout, stderr, seconds)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_uid(uid: int) -> None:
    """SIGKILL every process whose real uid is ``uid`` until none is left."""
    for _ in range(50):
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def processes_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            # Zombies (State Z) are already dead; only their parent can reap them.
            if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
                pids.append(int(entry.name))
        except (OSError, ValueError, KeyError):
            continue
    return pids


def tail(f, limit: int = 4000) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - limit))
    return f.read().decode("utf-8", errors="replace")
