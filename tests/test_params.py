"""params.yaml validation: every error names the key and what is allowed; stages stop before any work."""
from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sae import params as P
from sae.errors import ParamError

REPO = Path(__file__).resolve().parents[1]
REAL = yaml.safe_load((REPO / "params.yaml").read_text())


def _edited(edit) -> dict:
    """A deep copy of the real params.yaml with edit(copy) applied."""
    p = copy.deepcopy(REAL)
    edit(p)
    return p


def test_real_params_yaml_is_valid():
    got = P.validate(copy.deepcopy(REAL))
    assert got["datasets"] == REAL["datasets"] and got["models"] == REAL["models"]
    assert got["train_datasets"] == REAL["train_datasets"]
    assert set(got["data"]) == set(REAL["datasets"])
    assert P.load(REPO / "params.yaml") == got


def test_every_dataset_config_in_params_yaml_is_valid():
    """Also the download-only sets, so `dvc exp run -S datasets=[...]` works for each of them."""
    assert set(REAL["data"]) == set(P.DATASET_IDS) == set(P.DATA_KEYS)
    all_sets = P.validate(_edited(lambda p: p.update(datasets=list(P.DATASET_IDS))))
    for d, cfg in all_sets["data"].items():
        assert set(cfg) == set(P.DATA_KEYS[d])


def test_unknown_dataset_lists_allowed_ids():
    with pytest.raises(ParamError) as exc:
        P.validate(_edited(lambda p: p["datasets"].append("nosuchset")))
    msg = str(exc.value)
    assert "nosuchset" in msg and "datasets" in msg
    assert all(d in msg for d in P.DATASET_IDS)


def test_unknown_model_lists_allowed_ids():
    with pytest.raises(ParamError) as exc:
        P.validate(_edited(lambda p: p["models"].append("nosuchmodel")))
    msg = str(exc.value)
    assert "nosuchmodel" in msg and "models" in msg
    assert all(m in msg for m in P.MODEL_IDS)


@pytest.mark.parametrize("device", ["gpu", "cuda:0", "", None])
def test_bad_device(device):
    with pytest.raises(ParamError, match=r"device=.*allowed: auto, cpu, cuda"):
        P.validate(_edited(lambda p: p.update(device=device)))


@pytest.mark.parametrize("device", P.DEVICES)
def test_good_device(device):
    assert P.validate(_edited(lambda p: p.update(device=device)))["device"] == device


def test_missing_data_key_is_named():
    def edit(p):
        del p["data"]["mnist5k"]["val"]
    with pytest.raises(ParamError, match=r"^data\.mnist5k\.val: missing"):
        P.validate(_edited(edit))


@pytest.mark.parametrize("key", ["datasets", "train_datasets", "models", "seed", "device", "data"])
def test_missing_top_level_key_is_named(key):
    with pytest.raises(ParamError, match=rf"^{key}: missing"):
        P.validate(_edited(lambda p: p.pop(key)))


def test_missing_data_group_of_a_listed_dataset():
    def edit(p):
        p["datasets"].append("mnist")
        del p["data"]["mnist"]
    with pytest.raises(ParamError, match=r"^data\.mnist: missing or not a mapping"):
        P.validate(_edited(edit))


@pytest.mark.parametrize("dataset, key, value, expected", [
    ("mnist5k", "val", -1, "must be >= 0"),
    ("mnist5k", "val", "500", "expected int"),
    ("mnist5k", "val", 1.5, "expected int"),
    ("mnist5k", "val", True, "expected int"),
    ("mnist5k", "test", 0, "must be >= 1"),
    ("optdigits", "std_eps", -0.1, "must be >= 0.0"),
    ("optdigits", "std_eps", "small", "expected float"),
    ("patches", "n_train", 0, "must be >= 1"),
    ("patches", "size", None, "expected int"),
])
def test_impossible_value_names_the_key(dataset, key, value, expected):
    with pytest.raises(ParamError) as exc:
        P.validate(_edited(lambda p: p["data"][dataset].update({key: value})))
    msg = str(exc.value)
    assert msg.startswith(f"data.{dataset}.{key}=") and expected in msg


def test_unknown_data_key_is_named_with_allowed_keys():
    with pytest.raises(ParamError) as exc:
        P.validate(_edited(lambda p: p["data"]["mnist5k"].update(vall=500)))
    msg = str(exc.value)
    assert msg.startswith("data.mnist5k.vall: unknown key") and all(k in msg for k in P.DATA_KEYS["mnist5k"])


def test_int_accepted_where_float_belongs():
    got = P.validate(_edited(lambda p: p["data"]["mnist5k"].update(std_eps=0)))
    assert got["data"]["mnist5k"]["std_eps"] == 0.0 and isinstance(got["data"]["mnist5k"]["std_eps"], float)


def test_repeated_id_and_empty_list():
    with pytest.raises(ParamError, match=r"^datasets=.*repeated id"):
        P.validate(_edited(lambda p: p["datasets"].append(p["datasets"][0])))
    with pytest.raises(ParamError, match=r"^models=\[\]: expected a non-empty list"):
        P.validate(_edited(lambda p: p.update(models=[])))


def test_load_missing_and_malformed_file(tmp_path):
    with pytest.raises(ParamError, match=r"file not found"):
        P.load(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("datasets: [mnist5k\n")
    with pytest.raises(ParamError, match=r"not valid YAML"):
        P.load(tmp_path / "params.yaml")


def test_stage_stops_on_unknown_dataset_with_one_line(tmp_path):
    """A stage script validates params.yaml first: exit 2, one stderr line, no data/ written."""
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(_edited(lambda p: p["datasets"].append("nosuchset")), sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "download.py"), "mnist5k"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and re.match(r"error: .*nosuchset", lines[0]), proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("group", ["sweep", "ksweep"])
def test_sweep_datasets_must_be_prepared(group):
    """Listing paper datasets in `datasets` without moving the sweeps along fails at once, by name."""
    other = {"sweep": "ksweep", "ksweep": "sweep"}[group]
    with pytest.raises(ParamError, match=rf"{group}\.datasets: 'patches' is not in datasets"):
        P.validate(_edited(lambda p: (p.update(datasets=["mnist5k", "optdigits"]),
                                      p[other].update(datasets=["mnist5k"]))))
    P.validate(_edited(lambda p: (p.update(datasets=["mnist", "norb"], train_datasets=["mnist", "norb"]),
                                  p["sweep"].update(datasets=["mnist"]),
                                  p["ksweep"].update(datasets=["mnist", "norb"]))))


def test_train_datasets_must_be_prepared():
    with pytest.raises(ParamError, match=r"^train_datasets: 'mnist' is not in datasets"):
        P.validate(_edited(lambda p: p["train_datasets"].append("mnist")))
    with pytest.raises(ParamError, match=r"^train_datasets: unknown id 'nosuchset'"):
        P.validate(_edited(lambda p: p["train_datasets"].append("nosuchset")))
