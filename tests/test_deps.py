"""Every stage depends on all the code it can run: dvc.yaml's deps cover each project module the
stage script imports (transitively, imports inside functions included), so editing any of them
reruns the stage instead of serving a stale result from the cache."""
import re
from pathlib import Path

import yaml

from sae.lockfile import lock_files
from sae.provenance import project_imports

ROOT = Path(__file__).resolve().parent.parent


def stage_definitions(dvc_yaml: Path) -> dict[str, dict]:
    """name -> definition (the `do` body of a foreach), YAML anchors and merge keys resolved."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    return {name: d.get("do", d) for name, d in stages.items()}


def uncovered(root: Path) -> dict[str, list[str]]:
    """For each stage of the pipeline's dvc.yaml files: the project files its script can import that
    no code dep covers."""
    out = {}
    definitions = {name: d for lock in lock_files(root) if lock.with_name("dvc.yaml").is_file()
                   for name, d in stage_definitions(lock.with_name("dvc.yaml")).items()}
    assert len(definitions) > 10, definitions
    for name, d in definitions.items():
        cmd = d["cmd"] if isinstance(d["cmd"], str) else " ".join(d["cmd"])
        script = re.search(r"python3? (\S+\.py)", cmd)
        assert script, f"{name}: no python script in its cmd"
        deps = [str(x) for x in d.get("deps", []) if "${" not in str(x)]
        files = {script[1], *(p.relative_to(root.resolve()).as_posix()
                              for p in project_imports(root / script[1], root))}
        missing = [f for f in sorted(files) if not any(f == dep or f.startswith(dep.rstrip("/") + "/") for dep in deps)]
        if missing:
            out[name] = missing
    return out


def test_every_stage_depends_on_every_module_it_runs():
    assert uncovered(ROOT) == {}


def test_the_check_catches_a_missing_module(tmp_path):
    """The check itself: a train dvc.yaml without sae/train.py in its deps is caught."""
    import shutil
    for part in ("stages", "sae", "pipelines"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "dvc.lock"))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    train = tmp_path / "pipelines" / "train" / "dvc.yaml"
    text = train.read_text()
    assert " sae/train.py," in text
    train.write_text(text.replace(" sae/train.py,", "", 1))
    caught = uncovered(tmp_path)
    assert any("sae/train.py" in files for files in caught.values()), caught


def test_imports_inside_functions_are_followed(tmp_path):
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "__init__.py").write_text("")
    (tmp_path / "sae" / "a.py").write_text("def f():\n    from sae import b\n")
    (tmp_path / "sae" / "b.py").write_text("from .c import x\n")
    (tmp_path / "sae" / "c.py").write_text("x = 1\n")
    (tmp_path / "run.py").write_text("import sae.a\n")
    found = {p.name for p in project_imports(tmp_path / "run.py", tmp_path)}
    assert found == {"__init__.py", "a.py", "b.py", "c.py"}


def test_the_lock_pins_every_declared_dependency_by_hash():
    """requirements.lock (what CI installs) pins every dependency of pyproject.toml, the test
    extras included, at a version the declaration admits, each with its sha256; .ci/run runs the
    README's test line verbatim."""
    import re
    import tomllib

    from packaging.requirements import Requirement
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    text = (root / "requirements.lock").read_text()
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s\\;]+)", block)
        if m:
            assert "--hash=sha256:" in block, m.group(1)
            pins[re.sub(r"[-_.]+", "-", m.group(1).lower())] = m.group(2)
    for req in declared:
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = re.sub(r"[-_.]+", "-", req.name.lower())
        assert name in pins, f"{req.name} is not pinned in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    readme = (root / "README.md").read_text()
    ci = [line for line in (root / ".ci/run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1 and ci[0] in readme and "pip install -r requirements.lock" in ci[0]
