"""Shared fixtures."""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fresh_copy import fresh_copy as copy_repo


def pytest_configure(config):
    """Under pytest-xdist the workers divide the cores: torch in each worker, and the stage
    processes the tests start (through SAE_WORKERS, read by sae.base.cli), take their share."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1:
        import torch
        os.environ.setdefault("SAE_WORKERS", str(workers))
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // workers))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """xdist groups (`--dist loadgroup`): tests sharing an expensive fixture run on one worker.

    The tiny repository's tests are two groups, the multi-machine ones (fan-out, second clone,
    queue) and the rest: as one group they were the whole run's critical path. The workers share
    one repro of it (tiny_reference). The fan-out test, first of its group, asks for it only
    after its own jobs (marker tiny_repo_late), by when the other worker has built it. The
    paper-scale tests share one module fixture, which a split across workers would build twice."""
    for item in items:
        if "tiny_repo" in getattr(item, "fixturenames", ()) or item.get_closest_marker("tiny_repo_late"):
            machines = item.path.name in ("test_fanout.py", "test_scaling.py")
            item.add_marker(pytest.mark.xdist_group("tiny_repo_machines" if machines else "tiny_repo"))
        elif "paper_repo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("paper_repo"))


@dataclass
class HttpServer:
    """A local HTTP server: files under root are served at url + "/" + relative path."""

    url: str
    root: Path
    requests: list[str] = field(default_factory=list)  # request paths, in order
    headers: list[dict[str, str]] = field(default_factory=list)  # their headers, same order
    support_range: bool = True  # False: ignore Range and send 200 with the whole file, like some servers


class _Handler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler that records requests and answers `Range: bytes=N-` with 206."""

    def __init__(self, *args, state: HttpServer, **kwargs):
        self.state = state
        super().__init__(*args, **kwargs)

    def send_head(self):
        self.state.requests.append(self.path)
        self.state.headers.append(dict(self.headers))
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if not (match and self.state.support_range and os.path.isfile(path)):
            return super().send_head()
        start, size = int(match[1]), os.path.getsize(path)
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return f

    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def http_server(tmp_path_factory):
    """Serve a fresh temporary directory on 127.0.0.1 from a daemon thread; yields an HttpServer."""
    root = tmp_path_factory.mktemp("served")
    state = HttpServer(url="", root=root)
    handler = functools.partial(_Handler, state=state, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)  # fast shutdown
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def mnist5k_dir(tmp_path_factory):
    """mnist5k prepared with the real params.yaml config, once per test session."""
    from sae.config import load
    from sae.data import prepared, sources

    cfg = load(Path(__file__).parent.parent / "params.yaml").data["mnist5k"]
    root = tmp_path_factory.mktemp("mnist5k")
    sources.fetch("mnist5k", root / "raw")
    splits = sources.load("mnist5k", root / "raw", cfg)
    prepared.write(splits, root / "prepared", dataset="mnist5k", std_eps=cfg["std_eps"])
    return root / "prepared"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread while a module's tests run (restored after): on a shared 2-core machine,
    torch's 2 OpenMP threads stall behind other processes (5-10x slower); no assertion depends on it."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


ROOT = Path(__file__).resolve().parent.parent


def compose_params(root: Path, *overrides: str) -> str:
    """params.yaml as `dvc exp run -S ...` composes it from root/conf (Hydra)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    with initialize_config_dir(str(Path(root) / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_yaml(cfg, resolve=True)


def run(args, cwd, check=True, env=None):
    """A subprocess in `cwd` with this interpreter's tools first on PATH and the copy's code importable;
    `env` adds variables, or removes those it maps to None."""
    import subprocess
    import sys
    full = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                DVC_NO_ANALYTICS="1", PYTHONPATH=str(cwd), **(env or {}))
    full = {k: v for k, v in full.items() if v is not None}
    proc = subprocess.run(args, cwd=cwd, env=full, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def dvc(*args, cwd, check=True, env=None):
    import sys
    return run([sys.executable, "-m", "dvc", *args], cwd, check, env)


def git(*args, cwd):
    return run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd)


def tiny_reference(tmp_path_factory) -> tuple[Path, str]:
    """A copy of the repository with params.yaml composed at scale=tiny, reproduced with the real
    `dvc repro` and committed, once per test run: (path, output of that repro). The first xdist
    worker to ask builds it under a file lock in the folder the workers share; the others wait
    for it. Nobody works in it: tests get copies (tiny_repo)."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's own folder
    ref, output = shared / "tiny-reference", shared / "tiny-reference.out"
    with FileLock(str(shared / "tiny-reference.lock")):
        if not output.is_file():  # written last: a build that failed part-way starts over
            shutil.rmtree(ref, ignore_errors=True)
            ref.mkdir()
            copy_repo(ref)
            (ref / "params.yaml").write_text(compose_params(ref, "scale=tiny"))
            git("add", "-A", cwd=ref)
            git("commit", "-qm", "tiny", cwd=ref)
            first = dvc("repro", cwd=ref)
            git("add", "-A", cwd=ref)
            git("commit", "-qm", "reproduced", cwd=ref)
            output.write_text(first.stdout + first.stderr)
    return ref, output.read_text()


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory):
    """This worker's copy of the reproduced tiny repository (its DVC cache too): (path, output of
    the repro that built it). A copy instead of a repro of its own: the workers share one repro."""
    ref, output = tiny_reference(tmp_path_factory)
    dest = tmp_path_factory.mktemp("pipeline") / "repo"
    shutil.copytree(ref, dest, symlinks=True)
    return dest, output
