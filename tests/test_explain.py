"""python -m sae.config explain: every resolved setting of a model stage, the layer and file that set it,
and the paper's value or the ledger's reason."""
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _explain(repo: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sae.config", "explain", *argv], cwd=repo, capture_output=True, text=True,
                          check=False)


def _line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.split()[:1] == [name])


def test_explain_names_the_layer_the_file_and_the_paper(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")  # the default scale
    done = _explain(repo, "makhzani2014", "mnist", "ksparse")
    assert done.returncode == 0, done.stderr
    k = _line(done.stdout, "k")
    assert "makhzani2014.model.ksparse.k " in k and "[conf/makhzani2014.yaml]" in k and "paper: 25 (sec. 4.4" in k
    epochs = _line(done.stdout, "epochs")
    assert "[conf/scale/default.yaml]" in epochs and "paper: 5000" in epochs       # a reduction of the scale
    assert "ledger: not published: ours" in _line(done.stdout, "k_start")          # no published value
    # a -S override (dvc exp run writes it into params.yaml) is named as such
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["makhzani2014"]["model"]["ksparse"]["k"] = 40
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    k = _line(_explain(repo, "makhzani2014", "mnist", "ksparse").stdout, "k")
    assert " 40 " in k and "[params.yaml (an override" in k


def test_explain_refuses_a_bad_model_in_one_line(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    done = _explain(repo, "makhzani2014", "mnist", "nosuch")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: makhzani2014.model.nosuch")
    assert _explain(repo).stdout.startswith("usage: python -m sae.config explain")


def test_every_function_of_the_readme_equation_index_exists():
    import importlib
    import re
    text = (ROOT / "README.md").read_text().split("### Where each equation lives")[1].split("\n## ")[0]
    names = re.findall(r"`(sae\.[\w.]+)`", text)
    assert len(names) >= 25
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break
        else:
            raise AssertionError(name)
