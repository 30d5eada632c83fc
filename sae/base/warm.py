"""Warm stages: a torch stage runs in a fork of a server that has already imported torch (Linux).

`import torch` is most of a short stage's start-up, and a run starts about sixty torch stages
(README: Benchmarks). The first of them starts a server (`serve`) that imports torch, numpy and
pandas, nothing of the project, and never runs a torch op (a fork after one can hang in OpenMP). Each
torch stage then sends the server its argv, working directory, environment, sys.path and standard
streams (`hand_off`); the server forks, the fork imports the project's code fresh from disk and
runs the stage script as `python SCRIPT ARGS` would, and the stage process waits, forwards
signals and exits with the fork's status. So a stage runs the code dvc.yaml tracks, with the
params, seeds and threads it would have had. The server exits after IDLE_SECONDS without work.

SAE_WARM=0 runs every stage in its own process. Anything that fails before the fork (no Linux
pidfd, an unwritable socket directory, a server that does not come up) does the same, silently:
a warm stage is only ever a faster start. A server serves only processes that would import the
same torch and numpy under the same import-time settings (`_server_key`).
"""
from __future__ import annotations

import json
import os
import sys

ENV = "SAE_WARM"        # "0": off; "served": set in a fork, so its stage runs there
PARENT_ENV = "SAE_WARM_PARENT"  # in a fork: the pid of the handing-off stage process's parent
PRELOAD = ("torch", "numpy", "pandas")  # pandas: dvclive's import, most of it
IDLE_SECONDS = 60.0     # a server with no stage for this long exits
START_SECONDS = 120.0   # the first stage waits this long for a new server's imports
# environment read when the interpreter and the preloaded libraries start (Python's flags and
# encodings, the OpenMP/MKL runtimes, the time zone): a different value needs a different server
_KEY_PREFIXES = ("PYTHON", "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "TORCH", "PYTORCH_", "LD_", "LANG", "LC_",
                 "TZ")
_HEADER = 8             # bytes of the request's length, sent with the three descriptors


def available() -> bool:
    """Linux with pidfd, not turned off, not a fork already, and no interpreter options on the
    command line (`python -X ... SCRIPT`: the server would not have them)."""
    return (sys.platform == "linux" and hasattr(os, "pidfd_open") and os.environ.get(ENV, "1") not in ("0", "served")
            and sys.orig_argv[1:] == sys.argv)


def hand_off() -> None:
    """Run this process's script in a fork of the warm server and exit with its status. Returns,
    so that the stage runs in this process, when warm stages are off or unavailable, in the fork
    itself, or when anything fails before the fork exists."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if not available() or script is None:
        return
    try:
        conn = _connect(_socket_path())
    except OSError:
        return
    with conn:
        try:
            umask = os.umask(0)
            os.umask(umask)
            request = json.dumps({"script": os.path.abspath(script), "argv": sys.argv, "cwd": os.getcwd(),
                                  "env": dict(os.environ), "path": sys.path, "parent": os.getppid(),
                                  "cpus": sorted(os.sched_getaffinity(0)), "umask": umask}).encode()
            _send_request(conn, request)
            replies = conn.makefile("rb")
            first = replies.readline()
        except OSError:
            return
        if not first:
            return  # the server refused before forking
        pid = json.loads(first)["pid"]
        _forward_signals(pid)
        last = replies.readline()
    if not last:
        sys.stderr.write(f"\nerror: the warm stage server ended before its stage (pid {pid}); "
                         f"rerun with {ENV}=0\n")
        sys.exit(1)
    _exit_like(json.loads(last)["status"])


def _forward_signals(pid: int) -> None:
    """Signals to this process reach the fork (which runs in the server's session, so the
    terminal's Ctrl-C and Ctrl-Z reach only this one); on Ctrl-Z both stop and both go on, or,
    where the kernel discards the stop (an orphaned process group), neither stops."""
    import signal

    def send(sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def forward(signum, frame):
        send(signum)

    def stop(signum, frame):
        send(signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT (not at all in an orphaned group)
        signal.signal(signal.SIGTSTP, stop)
        send(signal.SIGCONT)

    def resume(signum, frame):
        send(signal.SIGCONT)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    signal.signal(signal.SIGTSTP, stop)
    signal.signal(signal.SIGCONT, resume)


def stage_parent() -> int:
    """The parent of the stage process: DVC's, also in a fork (whose own parent is the server)."""
    return int(os.environ.get(PARENT_ENV) or os.getppid())


def _exit_like(status: int) -> None:
    """Exit as the fork did: its exit code, or death by its signal."""
    if os.WIFSIGNALED(status):
        import signal
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        sys.stdout.flush()
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(status))


# ---- where the server listens --------------------------------------------------------------

def _server_key() -> str:
    """What a server must share with a stage: interpreter, this file, the preloaded packages'
    files, the environment they read when they load, and what a fork inherits from the server
    rather than from the stage process: control group (a batch job's cores and memory),
    resource limits and priority."""
    import hashlib
    import resource
    from importlib.util import find_spec
    from pathlib import Path
    parts = [sys.executable, sys.version, hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
             str(os.getpriority(os.PRIO_PROCESS, 0))]
    try:
        parts.append(Path("/proc/self/cgroup").read_text())
    except OSError:
        pass
    parts += [str(resource.getrlimit(getattr(resource, n))) for n in dir(resource) if n.startswith("RLIMIT_")]
    for name in PRELOAD:
        spec = find_spec(name)
        origin = spec.origin if spec and spec.origin else ""
        parts.append(f"{origin}:{os.stat(origin).st_mtime_ns if origin else ''}")
    parts += sorted(f"{k}={v}" for k, v in os.environ.items()
                    if k.startswith(_KEY_PREFIXES) and k not in ("PYTHONPATH", ENV))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _socket_path() -> str:
    """<runtime or temp dir>/sae-warm-<uid>/<key>: a directory only this user can enter."""
    import stat
    import tempfile
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = os.path.join(base, f"sae-warm-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a private directory of this user")
    return os.path.join(folder, _server_key())


def _try_connect(path: str):
    import socket
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    return conn


def _connect(path: str):
    """A connection to the server at path, started (once, under a lock) if none answers."""
    import fcntl
    import subprocess
    import time
    conn = _try_connect(path)
    if conn:
        return conn
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = _try_connect(path)
        if conn:
            return conn
        try:
            os.unlink(path)  # a server that died without removing its socket
        except FileNotFoundError:
            pass
        boot = "import sys; sys.path[:] = sys.argv[2:]; import sae.base.warm as w; w.serve(sys.argv[1])"
        server = subprocess.Popen([sys.executable, "-c", boot, path, *sys.path], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                                  start_new_session=True, cwd="/")
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            conn = _try_connect(path)
            if conn:
                server.returncode = 0  # it outlives this process: no ResourceWarning for it
                return conn
            if server.poll() is not None:
                break
            time.sleep(0.02)
        raise ConnectionError(f"no warm stage server at {path}")


# ---- the request: its length and the three standard streams, then JSON ----------------------

def _send_request(conn, request: bytes) -> None:
    import socket
    socket.send_fds(conn, [len(request).to_bytes(_HEADER, "big")], [0, 1, 2])
    conn.sendall(request)


def _receive_request(conn) -> tuple[dict, list[int]]:
    import socket
    header, fds, _, _ = socket.recv_fds(conn, _HEADER, 3)
    while len(header) < _HEADER:
        more = conn.recv(_HEADER - len(header))
        if not more:
            raise ConnectionError("request cut short")
        header += more
    size = int.from_bytes(header, "big")
    body = bytearray()
    while len(body) < size:
        more = conn.recv(min(1 << 16, size - len(body)))
        if not more:
            raise ConnectionError("request cut short")
        body += more
    if len(fds) != 3:
        raise ConnectionError("request without its three standard streams")
    return json.loads(body), fds


# ---- the server ------------------------------------------------------------------------------

def serve(path: str) -> None:
    """Import PRELOAD, then fork a stage for each request at path until IDLE_SECONDS pass with
    none running. Returns only in a fork, after `_become` made it the stage's process: the caller
    then runs the stage script (at top level, so the interpreter exits as the script's would)."""
    import atexit
    import importlib
    import selectors
    import socket
    atexit.register(_end_fork)  # before PRELOAD registers its own: so it runs after them
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # then each fork imports it, if it needs it
            pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError:
        os._exit(0)  # another server took the path
    listener.listen(64)
    mine = os.stat(path).st_ino
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    forks = {}  # pidfd -> (pid, the stage process's connection)
    while True:
        events = sel.select(timeout=None if forks else IDLE_SECONDS)
        if not events and not forks:
            break
        for key, _ in events:
            if key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    request, fds = _receive_request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    for pidfd, (_, other) in forks.items():
                        os.close(pidfd)
                        other.close()
                    sel.close()
                    listener.close()
                    _become(request, fds, conn)
                    _run_script(request["script"])
                    return
                for fd in fds:
                    os.close(fd)
                try:
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                except OSError:
                    pass
                pidfd = os.pidfd_open(pid)
                forks[pidfd] = (pid, conn)
                sel.register(pidfd, selectors.EVENT_READ, "exit")
                sel.register(conn, selectors.EVENT_READ, pidfd)
            elif key.data == "exit":  # a fork ended: its status to the stage process waiting for it
                pid, conn = forks.pop(key.fd)
                _, status = os.waitpid(pid, 0)
                sel.unregister(key.fd)
                os.close(key.fd)
                if conn.fileno() != -1:
                    sel.unregister(conn)
                    try:
                        conn.sendall(json.dumps({"status": status}).encode() + b"\n")
                    except OSError:
                        pass
                    conn.close()
            elif not key.fileobj.recv(1):  # the stage process is gone (killed): so goes its fork
                sel.unregister(key.fileobj)
                key.fileobj.close()
                try:
                    os.kill(forks[key.data][0], 9)
                except ProcessLookupError:
                    pass
    try:
        if os.stat(path).st_ino == mine:
            os.unlink(path)
    except FileNotFoundError:
        pass
    os._exit(0)


def _become(request: dict, fds: list[int], conn) -> None:
    """Make this fork the stage's process: its streams, directory, umask, CPU affinity, environment,
    argv, sys.path, default signal handling, and no module of the project loaded."""
    import io
    import signal
    conn.close()
    try:  # killed with its server (PR_SET_PDEATHSIG): the stage process then reports a failure
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    try:
        os.sched_setaffinity(0, request["cpus"])  # `taskset` on a queue worker pins its stages
    except OSError:
        pass
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[ENV] = "served"
    os.environ[PARENT_ENV] = str(request["parent"])
    sys.argv[:] = request["argv"]
    sys.path[:] = request["path"]
    for name in [n for n in sys.modules if n == "sae" or n.startswith("sae.")]:
        del sys.modules[name]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # new streams on the stage's descriptors; encoding and errors as this interpreter chose them
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    for fd, name, mode in ((0, "stdin", "rb"), (1, "stdout", "wb"), (2, "stderr", "wb")):
        old = getattr(sys, f"__{name}__")
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(buffered, encoding=old.encoding, errors=old.errors,
                                  line_buffering=os.isatty(fd) or fd == 2, write_through=unbuffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _run_script(script: str) -> None:
    """Run script as __main__, as `python script` does; an uncaught exception prints its traceback
    (without this function's frame) and exits 1. Records the status for _end_fork."""
    global _status
    import builtins
    import types
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    with open(script, "rb") as f:
        code = compile(f.read(), script, "exec")
    try:
        exec(code, main.__dict__)
    except SystemExit as exc:  # the interpreter prints a non-int code itself, as for any script
        _status = exc.code if exc.code is None or isinstance(exc.code, int) else 1
        raise
    except KeyboardInterrupt:
        _status = "SIGINT"
        raise
    except BaseException as exc:
        exc = exc.with_traceback(exc.__traceback__.tb_next)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        _status = 1
        sys.exit(1)
    _status = 0


_status = None  # in a fork: its exit status once the script ended (None in the server)


def _end_fork() -> None:
    """The last exit callback of a fork (registered before any other): after the script's threads
    were joined and every other callback ran, flush and exit without tearing the interpreter
    down, which is a second or more with torch loaded and writes nothing of the stage's."""
    if _status is None:
        return
    import gc
    gc.collect()  # finalizers of whatever the script left in reference cycles
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if _status == "SIGINT":  # as CPython ends on an uncaught KeyboardInterrupt
        import signal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(_status or 0)
