"""sae.base.warm: a stage handed to the warm server runs as `python SCRIPT ARGS` would, in a fork
that has torch already imported; it falls back to its own process when it cannot."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sae.base import warm

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="warm stages are Linux only (fork, pidfd)")

ROOT = Path(__file__).resolve().parent.parent

# prints what tells a fork from a process of its own, then does what argv asks
SCRIPT = textwrap.dedent("""\
    import os, sys
    preloaded = "torch" in sys.modules
    from sae.base.warm import hand_off
    hand_off()
    import helper
    from sae.base.warm import stage_parent
    umask = os.umask(0)
    print("served" if os.environ.get("SAE_WARM") == "served" else "own", preloaded, helper.VALUE,
          os.getcwd(), " ".join(sys.argv[1:]), os.environ.get("PROBE"), sorted(os.sched_getaffinity(0)),
          oct(umask), stage_parent(), sep="|", flush=True)
    print("to stderr", file=sys.stderr)
    action = sys.argv[1]
    if action == "exit":
        sys.exit(int(sys.argv[2]))
    if action == "raise":
        raise ValueError("raised by the stage")
    if action == "sleep":
        open(sys.argv[2], "w").write(str(os.getpid()))
        try:
            import time
            time.sleep(60)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
    """)


@pytest.fixture
def stage(tmp_path):
    folder = tmp_path / "stages"
    folder.mkdir()
    (folder / "probe.py").write_text(SCRIPT)
    (folder / "helper.py").write_text("VALUE = 1\n")
    return folder


def launch(stage, *args, env=None, cwd=None, **kwargs):
    full = {k: v for k, v in os.environ.items() if k != warm.ENV}
    full.update(PYTHONPATH=str(ROOT), PROBE="probe-value", **(env or {}))
    return subprocess.Popen([sys.executable, str(stage / "probe.py"), *args], cwd=cwd or stage.parent, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def fields(out: str) -> list[str]:
    return out.splitlines()[0].split("|")


def test_a_stage_runs_in_a_fork_with_its_own_argv_cwd_env_streams_and_status(stage, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))[:1]

    def pinned():  # as `taskset` and `umask` would leave the stage process
        os.sched_setaffinity(0, cpus)
        os.umask(0o027)
    done = launch(stage, "exit", "3", cwd=tmp_path, preexec_fn=pinned)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 3, err
    same = [str(tmp_path), "exit 3", "probe-value", str(cpus), "0o27", str(os.getpid())]
    assert fields(out) == ["served", "True", "1", *same], out
    assert "to stderr" in err
    cold = launch(stage, "exit", "3", cwd=tmp_path, env={warm.ENV: "0"}, preexec_fn=pinned)
    out, err = cold.communicate(timeout=300)
    assert cold.returncode == 3 and fields(out) == ["own", "False", "1", *same], out


def test_the_fork_imports_the_stages_code_fresh_from_disk(stage):
    first, _ = launch(stage, "exit", "0").communicate(timeout=300)
    (stage / "helper.py").write_text("VALUE = 2\n")
    second, _ = launch(stage, "exit", "0").communicate(timeout=300)
    assert fields(first)[:3] == ["served", "True", "1"] and fields(second)[:3] == ["served", "True", "2"]


def test_an_uncaught_exception_exits_1_with_the_stages_traceback(stage):
    done = launch(stage, "raise")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 1 and fields(out)[0] == "served"
    assert 'probe.py", line' in err and "ValueError: raised by the stage" in err, err
    assert "warm.py" not in err, err


def test_ctrl_c_and_ctrl_z_reach_the_fork_and_a_killed_stage_takes_its_fork_along(stage, tmp_path):
    pid_file = tmp_path / "pid"
    # its own process group, as a shell's job: the kernel discards Ctrl-Z in an orphaned group
    done = launch(stage, "sleep", str(pid_file), preexec_fn=os.setpgrp)
    wait_for(lambda: pid_file.exists() and catches(done.pid, signal.SIGTSTP))  # it knows the fork's pid
    fork = int(pid_file.read_text())
    done.send_signal(signal.SIGTSTP)  # Ctrl-Z stops the fork too, and `fg` resumes both
    wait_for(lambda: state(fork) == "T" and state(done.pid) == "T")
    done.send_signal(signal.SIGCONT)
    wait_for(lambda: state(fork) == "S" and state(done.pid) == "S")
    done.send_signal(signal.SIGINT)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 130 and "interrupted" in err and fields(out)[0] == "served", (out, err)

    pid_file.unlink()
    killed = launch(stage, "sleep", str(pid_file), start_new_session=True)  # an orphaned group
    wait_for(lambda: pid_file.exists() and catches(killed.pid, signal.SIGTSTP))
    fork = int(pid_file.read_text())
    killed.send_signal(signal.SIGTSTP)  # discarded by the kernel here: neither stays stopped
    time.sleep(0.5)
    wait_for(lambda: state(fork) == "S" and state(killed.pid) == "S")
    assert fork != killed.pid
    killed.kill()
    killed.communicate(timeout=60)
    wait_for(lambda: state(fork) in ("gone", "Z"))


def test_anything_wrong_before_the_fork_runs_the_stage_in_its_own_process(stage, tmp_path):
    shared = tmp_path / "runtime"
    shared.mkdir()
    (shared / f"sae-warm-{os.getuid()}").mkdir(mode=0o777)
    os.chmod(shared / f"sae-warm-{os.getuid()}", 0o777)  # not private: never used
    done = launch(stage, "exit", "0", env={"XDG_RUNTIME_DIR": str(shared)})
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0 and fields(out)[:2] == ["own", "False"], (out, err)
    assert not list((shared / f"sae-warm-{os.getuid()}").iterdir())


def test_a_different_import_time_setting_gets_its_own_server(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = warm._socket_path()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert warm._socket_path() != one
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")  # sys.path travels with the request
    monkeypatch.setenv("UNRELATED", "x")
    assert warm._socket_path() == warm._socket_path() != one


def catches(pid: int, sig: int) -> bool:
    """Whether a process has a handler installed for sig (Linux: SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def state(pid: int) -> str:
    """R, S, T (stopped), Z ... of a process (Linux); "gone" once it was reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def wait_for(condition, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
