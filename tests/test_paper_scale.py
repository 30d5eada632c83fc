"""The paper-scale protocol end to end, with the real `dvc repro`: every paper dataset downloaded
(from generated files in the exact real formats, through SAE_REMOTE_FILES), prepared, and every
stage kind run on it at the papers' sizes (1000 / 4000 hidden units, the papers' batches and k).
Only documented knobs cut the run: epochs, data sizes, seeds, and which models each paper trains."""
import hashlib
import json
import re

import pytest

from tests.conftest import compose_params, copy_repo, dvc, git
from tests.test_datasets import CASES
from tests.test_pipeline import ran

pytestmark = pytest.mark.slow

# documented knobs only (README: Paper scale, Changing parameters)
KNOBS = [
    "scale=paper", "seeds=[0,1]",
    "data.mnist.val=10", "data.norb.val=5", "data.svhn.val=10", "data.cifar10.val=10", "data.optdigits_uci.val=50",
    *(f"data.{d}.{k}={v}" for d in ("cifar10_patches", "cifar10_pixel_patches")
      for k, v in (("n_train", 300), ("n_val", 60), ("n_test", 60))),
    "amini2018.datasets=[svhn]", "amini2018.models=[l1prox]", "amini2018.finetune.models=[l1prox]",
    "amini2018.finetune.deep_models=[l1prox]", "amini2018.train.svhn.epochs=2",
    "amini2018.finetune.settings.epochs=1", "amini2018.finetune.settings.deep_epochs=[0,0,1]",
    "seyyedsalehi2017.datasets=[cifar10,optdigits_uci]", "seyyedsalehi2017.models=[sl0sq]",
    "seyyedsalehi2017.train.cifar10.epochs=1", "seyyedsalehi2017.train.optdigits.epochs=1",
    "makhzani2014.models=[ksparse]", "makhzani2014.finetune.models=[ksparse]",
    "makhzani2014.finetune.deep_models=[ksparse]", "makhzani2014.finetune.without_pretraining=[ksparse]",
    "makhzani2014.train.mnist.epochs=2", "makhzani2014.train.norb.epochs=2", "makhzani2014.train.cifar10_patches.epochs=1",
    "makhzani2014.finetune.settings.epochs=1", "makhzani2014.finetune.settings.deep_epochs=[1,0,1]",
    "++makhzani2014.finetune.settings.layer2_epochs=1",
    "arpit2016.models=[dae]", "arpit2016.protocol.epochs=1",
]


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    dest = copy_repo(root / "repo")
    files, table = root / "files", {}
    for dataset, case in CASES.items():
        if dataset == "fashion":
            continue
        folder = files / dataset
        folder.mkdir(parents=True)
        case.generate(folder, __import__("numpy").random.default_rng(0))
        table[dataset] = [{"name": p.name, "md5": hashlib.md5(p.read_bytes()).hexdigest(),
                           "urls": [p.as_uri()]} for p in sorted(folder.iterdir())]
    (root / "remote.json").write_text(json.dumps(table))
    (dest / "params.yaml").write_text(compose_params(dest, *KNOBS))
    git("add", "-A", cwd=dest)
    git("commit", "-qm", "paper scale, cut by knobs", cwd=dest)
    out = dvc("repro", cwd=dest, env={"SAE_REMOTE_FILES": str(root / "remote.json")})
    return dest, out.stdout + out.stderr


def test_every_paper_dataset_is_downloaded_prepared_and_used(paper_repo):
    dest, output = paper_repo
    stages = ran(output)
    for d in ("mnist", "norb", "svhn", "cifar10", "optdigits_uci", "cifar10_patches", "cifar10_pixel_patches"):
        assert f"download@{d}" in stages and f"prepare@{d}" in stages, d
        assert json.loads((dest / "data/prepared" / d / "meta.json").read_text())["dataset"] == d
    for stage in ("train-amini2018@svhn-l1prox", "finetune-amini2018@svhn-l1prox",
                  "evaluate-seyyedsalehi2017@cifar10-sl0sq", "evaluate-seyyedsalehi2017@optdigits_uci-sl0sq",
                  "train-makhzani2014@norb-ksparse", "finetune-makhzani2014@mnist-ksparse",
                  "train-makhzani2014-filters@cifar10_patches-ksparse", "sweep-arpit2016@cifar10_pixel_patches",
                  "report"):
        assert stage in stages, stage


def test_the_models_have_the_papers_sizes(paper_repo):
    dest, _ = paper_repo
    norb = json.loads((dest / "models/makhzani2014/norb/ksparse/hparams.json").read_text())
    assert (norb["in_dim"], norb["loop"]["hidden"], norb["options"]["k"], norb["options"]["alpha"]) == (2048, 4000, 150, 2.0)
    assert [v["k"] for v in norb["variants"]] == [150, 200, 75, 50]  # the k of Table 2 and Fig. 2, one batch
    svhn = json.loads((dest / "models/amini2018/svhn/l1prox/hparams.json").read_text())
    assert (svhn["in_dim"], svhn["loop"]["hidden"], svhn["loop"]["batch"]) == (1024, 256, 68)
    ft = json.loads((dest / "metrics/makhzani2014/norb/ksparse_finetune.json").read_text())
    assert ft["deep"]["arch"] == "2048-4000-4000-5" and ft["n_seeds"] == 2


def test_the_report_shows_each_paper_on_its_own_datasets(paper_repo):
    dest, _ = paper_repo
    report = (dest / "reports/report.md").read_text()
    assert "Scale: `paper`" in report
    for label in ("svhn (SVHN, grayscale)", "norb (small NORB)", "cifar10 (CIFAR-10)"):
        assert label in report, label
    assert not re.search(r"\bnan\b", report, re.IGNORECASE)
