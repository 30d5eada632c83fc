"""The training loop: batched = sequential, determinism, resume after a kill (schedule snapshots
included), code in the checkpoint fingerprint, divergence, and that every model learns."""
import shutil
from pathlib import Path

import pytest
import torch

from sae.base import metrics, stats
from sae.config import load
from sae.config.protocol import run_config
from sae.data import prepared
from sae.base.errors import DataError, ParamError, TrainingError
from sae.models import MODEL_IDS, build
from sae.base.optim import make_optimizer
from sae.provenance import code_fingerprint, project_imports
from sae.base.rng import init_generators
from sae.base.device import resolve_device
from sae.train import fit, fit_loop, learning_rate

ROOT = Path(__file__).resolve().parent.parent


def _toy(n=256, dim=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, dim, generator=g), torch.rand(64, dim, generator=g)


def _train(model_id, x, xv, seeds=(3,), per_model=None, epochs=6, **kw):
    options = kw.pop("model", {})
    model = build(model_id, x.shape[-1], 8, n_models=len(seeds), generators=init_generators(seeds),
                  per_model=per_model, **options)
    result = fit(model, x, xv, epochs=epochs, batch=32, lr=0.05, seeds=list(seeds), progress=False, **kw)
    return model, result


@pytest.mark.parametrize("model_id, key, values, options", [
    ("ae", None, None, {}),
    ("dae", "level", [0.0, 0.05, 0.2, 0.5], {"corruption": "gaussian", "activation": "relu", "tied": True}),
    ("cae", "lam", [0.0, 0.01, 0.1, 0.5], {}),
    ("sae0", "lam", [0.0, 0.01, 0.1, 0.5], {}),
    ("dropout", None, None, {"p_input": 0.2}),
    ("ksparse", "k", [2, 3, 5, 8], {"k_start": 8}),
])
def test_batched_fits_equal_sequential_fits(model_id, key, values, options):
    """The 003 sweep and the seeds train as one batch: each model ends where it would alone."""
    x, xv = _toy()
    seeds = [0, 0, 1, 2]  # repeated seeds share their streams, as the points of a sweep do
    per_model = {key: values} if key else None
    batch, _ = _train(model_id, x, xv, seeds, per_model=per_model, epochs=4, model=options)
    for g, seed in enumerate(seeds):
        one = {key: values[g]} if key else {}
        alone, _ = _train(model_id, x, xv, [seed], epochs=4, model={**options, **one})
        for (name, pb), pa in zip(batch.named_parameters(), alone.parameters()):
            scale = float(pa.detach().abs().max())
            assert float((pb[g] - pa[0]).detach().abs().max()) <= 1e-5 * scale, (name, g)


@pytest.mark.parametrize("model_id", ["dae", "dropout", "ksparse"])  # the ones that draw random numbers
def test_same_seed_gives_identical_weights(model_id):
    x, xv = _toy()
    extra = {"model": {"k": 3, "k_start": 6}} if model_id == "ksparse" else {}
    a, _ = _train(model_id, x, xv, **extra)
    b, _ = _train(model_id, x, xv, **extra)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def _kill_after(epoch):
    def hook(row):
        if row["epoch"] == epoch:
            raise KeyboardInterrupt  # as if the process were killed after the checkpoint before
    return hook


def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    x, xv = _toy()
    ckpt = tmp_path / "ckpt.pt"
    whole, whole_result = _train("dae", x, xv, seeds=(0, 1), epochs=7)
    with pytest.raises(KeyboardInterrupt):
        _train("dae", x, xv, seeds=(0, 1), epochs=7, checkpoint=ckpt, checkpoint_every=2, on_epoch=_kill_after(4))
    assert ckpt.is_file()
    seen = []
    resumed, result = _train("dae", x, xv, seeds=(0, 1), epochs=7, checkpoint=ckpt, checkpoint_every=2,
                             on_epoch=lambda row: seen.append(row["epoch"]))
    assert seen == list(range(7))  # epochs 0-3 replayed from the checkpoint, 4-6 trained
    for (name, pa), pb in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert [r["loss"] for r in result.history] == [r["loss"] for r in whole_result.history]
    # the final state stays until the caller has saved its outputs: a rerun trains nothing
    assert ckpt.is_file()
    again, again_result = _train("dae", x, xv, seeds=(0, 1), epochs=7, checkpoint=ckpt, checkpoint_every=2,
                                 on_epoch=_kill_after(99))
    assert again_result.history == result.history
    for (name, pa), pb in zip(resumed.state_dict().items(), again.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_a_flipped_byte_in_a_checkpoint_is_refused_with_one_line(tmp_path):
    x, xv = _toy()
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        _train("ae", x, xv, checkpoint=ckpt, checkpoint_every=1, on_epoch=_kill_after(2))
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x01
    ckpt.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"ckpt.pt: damaged checkpoint \(sha256 mismatch\)") as err:
        _train("ae", x, xv, checkpoint=ckpt, checkpoint_every=1)
    assert "\n" not in str(err.value)


def test_a_stopped_run_resumed_from_its_final_checkpoint_does_not_train_on(tmp_path):
    from sae.train import ConvergenceRule
    x, xv = _toy()
    ckpt, loose = tmp_path / "ckpt.pt", ConvergenceRule(window=0.1, tolerance=0.5, min_epochs=3)
    _, first = _train("ae", x, xv, epochs=30, checkpoint=ckpt, stop_at=loose)
    _, again = _train("ae", x, xv, epochs=30, checkpoint=ckpt, stop_at=loose, on_epoch=_kill_after(99))
    assert first.stopped_early and again.stopped_early and again.history == first.history


def test_a_resumed_l1prox_run_keeps_every_alpha_stage(tmp_path):
    """000 Fig. 1c must not depend on whether a run was interrupted (snapshots are checkpointed)."""
    x, xv = _toy()
    options = {"alpha0": 1.0, "f": 0.5, "T": 5}
    whole, _ = _train("l1prox", x, xv, epochs=10, model=options)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        _train("l1prox", x, xv, epochs=10, model=options, checkpoint=ckpt, checkpoint_every=4,
               on_epoch=_kill_after(5))
    resumed, _ = _train("l1prox", x, xv, epochs=10, model=options, checkpoint=ckpt, checkpoint_every=4)
    assert [s["epoch"] for s in resumed.snapshots] == [1, 3, 5, 7, 9]
    for a, b in zip(resumed.snapshots, whole.snapshots):
        assert a["alpha"] == b["alpha"] and torch.equal(a["W"], b["W"])


def test_checkpoint_of_other_hyperparameters_data_or_code_is_ignored(tmp_path):
    x, xv = _toy()
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        _train("ae", x, xv, checkpoint=ckpt, checkpoint_every=1, fingerprint="old", on_epoch=_kill_after(2))
    seen = []
    _train("ae", x, xv, checkpoint=ckpt, checkpoint_every=1, fingerprint="new",
           on_epoch=lambda r: seen.append(r["epoch"]))
    assert seen == list(range(6))


def test_the_train_stage_fingerprint_changes_with_any_module_it_runs(tmp_path):
    """A bug fix in a model module must not resume from a checkpoint of the old code."""
    for part in ("stages", "sae"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "stages" / "train.py"
    files = {p.relative_to(tmp_path).as_posix() for p in project_imports(script, tmp_path)}
    assert {"sae/models/core.py", "sae/train.py", "sae/base/optim.py", "sae/data/prepared.py"} <= files
    before = code_fingerprint(script, tmp_path)
    core = tmp_path / "sae" / "models" / "core.py"
    core.write_text(core.read_text() + "\n# a bug fix\n")
    assert code_fingerprint(script, tmp_path) != before


def test_diverging_loss_stops_with_the_run_model_and_epoch():
    x, xv = _toy()
    model = build("ae", 12, 8, activation="linear")
    with pytest.raises(TrainingError, match=r"toy/ae: loss became (nan|inf) at epoch \d+ \(model 0, seed 0\)"):
        fit(model, x * 1e3, xv, epochs=5, batch=32, lr=10.0, seeds=[0], name="toy/ae", progress=False)


def test_a_diverged_model_of_a_batch_is_masked_and_the_others_train_on():
    x, xv = _toy()
    model = build("ae", 12, 8, activation="linear", n_models=2, generators=init_generators([0, 1]))
    with torch.no_grad():
        model.W[1].mul_(1e6)  # model 1 blows up at once
    result = fit(model, x, xv, epochs=3, batch=32, lr=0.05, seeds=[0, 1], progress=False, on_divergence="mask")
    assert result.diverged == [False, True]
    assert torch.isfinite(model.W[0]).all()


def test_unit_length_rows_after_training():
    x, xv = _toy()
    model, _ = _train("cae", x, xv, seeds=(0, 1), model={"unit_norm": True, "lam": 0.1})
    torch.testing.assert_close(model.W.norm(dim=-1), torch.ones(2, 8), atol=1e-6, rtol=0)


def test_learning_rate_schedules():
    assert learning_rate(5, 10, 0.1, "constant", 0.001) == 0.1
    assert learning_rate(0, 11, 0.1, "linear", 0.0) == pytest.approx(0.1)
    assert learning_rate(5, 11, 0.1, "linear", 0.0) == pytest.approx(0.05)
    assert learning_rate(10, 11, 0.1, "linear", 0.0) == pytest.approx(0.0)


def test_hold_keeps_the_last_window_at_final_lr_and_unset_is_the_plain_decay():
    plain = [0.1 + (0.005 - 0.1) * e / 99 for e in range(100)]  # the formula before `hold` existed
    assert [learning_rate(e, 100, 0.1, "linear", 0.005) for e in range(100)] == plain  # bit for bit
    held = [learning_rate(e, 100, 0.1, "linear", 0.005, hold=0.1) for e in range(100)]
    assert held[0] == 0.1 and all(a > b for a, b in zip(held[:89], held[1:90]))
    span = stats.convergence_span(100, 0.1, 5)  # the convergence window of the default rule
    assert held[-span - 1:] == [0.005] * (span + 1)  # its first value too: after epoch 89, at final_lr
    assert learning_rate(3, 10, 0.1, "constant", 0.005, hold=0.5) == 0.1
    assert learning_rate(0, 2, 0.1, "linear", 0.005, hold=0.5) == 0.005  # nothing left to decay over


def test_fit_trains_the_held_epochs_at_final_lr():
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(0))
    model = build("ae", 12, 6, n_models=2, generators=init_generators([0, 1]))
    result = fit(model, x, x[:16], epochs=6, batch=16, seeds=[0, 1], lr=0.1, schedule="linear", final_lr=0.01,
                 hold=0.5, progress=False)
    assert [row["lr"] for row in result.history][2:] == [0.01] * 4


def test_device_auto_is_cpu_without_cuda_and_cuda_is_refused():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ParamError, match="device=cuda"):
            resolve_device("cuda")


@pytest.fixture(scope="module")
def embedded():
    """The quick (stand-in) protocol, composed from conf/ as `dvc exp run` would."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from sae.config import validate
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=["scale=quick"])
    return validate(OmegaConf.to_container(cfg, resolve=True))


def _mnist5k(prepared_dir, view, n_train=1500):
    d = prepared.read(prepared_dir, view)
    return torch.from_numpy(d["x_train"][:n_train]), torch.from_numpy(d["x_val"][:300])


PAPER_OF = {"amini2018": ("ae", "kl", "studentt", "dae", "ncae", "l1prox"), "seyyedsalehi2017": ("l1", "sl0sq"),
            "makhzani2014": ("relu_ae", "dropout", "dropout_dae", "ksparse")}


@pytest.mark.parametrize("paper, name", [(p, m) for p, ms in PAPER_OF.items() for m in ms])
def test_every_model_lowers_reconstruction_error_on_mnist5k(mnist5k_dir, embedded, one_torch_thread, paper, name):
    cfg = run_config(embedded, paper, "mnist5k", name)
    x, xv = _mnist5k(mnist5k_dir, cfg.loop.input)
    opts = {k: v for k, v in cfg.options.items() if k != "k_sweep"}
    model = build(cfg.id, x.shape[1], cfg.loop.hidden, generators=init_generators([0]), **opts)
    epochs = 3

    def val_error():
        model.on_epoch_start(epochs - 1, epochs)  # the encoding training ends with
        model.eval()
        with torch.no_grad():
            return float(metrics.reconstruction_error(xv, model.decode(model.encode(xv))).mean())
    before = val_error()
    fit_loop(model, cfg.loop.model_copy(update={"epochs": epochs}), x, xv, seeds=[0], progress=False)
    after = val_error()
    assert after < 0.8 * before, (before, after)


def test_l1prox_gini_rises_over_the_alpha_stages_more_than_with_one_stage(mnist5k_dir, embedded, one_torch_thread):
    """000 Fig. 1c by Gini (000's measure): from the end of the first alpha stage to the end of
    training the codes get sparser, clearly more than with T = 1 (the same run, alpha held at
    alpha0). Both as one batch of the two configurations' 3 seeds each would be; measured here
    with 10 epochs on 1,500 rows."""
    rises = {}
    for name in ("l1prox", "l1prox_final"):
        cfg = run_config(embedded, "amini2018", "mnist5k", name)
        x, xv = _mnist5k(mnist5k_dir, cfg.loop.input)
        opts = {k: v for k, v in cfg.options.items() if k != "k_sweep"}
        model = build(cfg.id, x.shape[1], cfg.loop.hidden, n_models=3, generators=init_generators([0, 1, 2]), **opts)
        result = fit_loop(model, cfg.loop.model_copy(update={"epochs": 10}), x, xv, seeds=[0, 1, 2], progress=False)
        gini = [row["val_gini"] for row in result.history]
        first_stage_end = 10 // 5 - 1  # epochs per stage = epochs / T(=5)
        rises[name] = [last - first for first, last in zip(gini[first_stage_end], gini[-1])]
    assert min(rises["l1prox"]) > 0, rises
    assert min(rises["l1prox"]) > 2 * max(rises["l1prox_final"]), rises


@pytest.mark.parametrize("tied", [False, True])
def test_weight_decay_in_the_optimiser_equals_the_penalty_in_the_loss(tied):
    """param_groups() applies lam(||W_enc||^2 + ||W_dec||^2) as a gradient: same steps as the loss term."""
    x, _ = _toy()
    a = build("ae", 12, 8, tied=tied, weight_decay=0.05, generators=init_generators([0]))
    b = build("ae", 12, 8, tied=tied, weight_decay=0.05)
    b.load_state_dict(a.state_dict())
    opt_a = make_optimizer(a.param_groups(), "sgd", 0.1, 0.9)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    for _ in range(5):
        loss_a, _ = a.objective(x[None])
        opt_a.zero_grad()
        loss_a.sum().backward()
        opt_a.step()
        loss_b, _ = b.objective(x[None])
        opt_b.zero_grad()
        (loss_b + b.weight_penalty()).sum().backward()
        opt_b.step()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)


def test_l1prox_keeps_the_weights_at_the_end_of_each_alpha_stage():
    """000 Fig. 1c: one snapshot per alpha stage, at its last epoch, the last one = the trained W."""
    x = torch.rand(40, 12)
    model = build("l1prox", 12, 6, alpha0=1.0, f=0.5, T=3, beta=0.5, generators=init_generators([0]))
    fit(model, x, x[:10], epochs=6, batch=10, lr=0.1, seeds=[0], progress=False)
    assert [s["epoch"] for s in model.snapshots] == [1, 3, 5]
    assert [s["alpha"] for s in model.snapshots] == [1.0, 0.5, 0.25]
    assert torch.equal(model.snapshots[-1]["W"], model.W.detach())
    assert not torch.equal(model.snapshots[0]["W"], model.snapshots[-1]["W"])


def test_l1prox_takes_one_prox_step_per_gradient_update():
    """000 Algorithm 1, per update: block 1 sets Y = soft_threshold(Z) from the CURRENT codes,
    block 2 takes ONE gradient step on eq. (10) with Y held fixed. Training (two updates in one
    epoch; identical rows, so the minibatch order cannot matter) equals that by hand; a Y kept
    over the epoch or an inner loop on either block would not."""
    import copy
    x = torch.rand(1, 6, generator=torch.Generator().manual_seed(0)).expand(8, 6).contiguous()
    model = build("l1prox", 6, 4, alpha0=1.0, f=0.6, T=1, beta=0.5, weight_decay=0.0,
                  generators=init_generators([0]))
    by_hand = copy.deepcopy(model)
    fit(model, x, x[:4], epochs=1, batch=4, lr=0.5, momentum=0.0, seeds=[0], progress=False)
    from sae.models.core import reconstruction_error
    from sae.models.l1prox import proximal_coupling, soft_threshold
    alpha = by_hand.on_epoch_start(0, 1)["alpha"]
    for _ in range(2):
        _, z = by_hand.codes(x[:4])
        y = soft_threshold(z.detach(), alpha * 0.5 / 4)  # block 1: 000 eq. (8), threshold alpha beta / N
        loss = reconstruction_error(x[:4], by_hand.decode(z)) + proximal_coupling(y, z, alpha)  # eq. (10)
        grads = torch.autograd.grad(loss.sum(), list(by_hand.parameters()))
        with torch.no_grad():
            for param, grad in zip(by_hand.parameters(), grads):
                param -= 0.5 * grad
    for trained, expected in zip(model.parameters(), by_hand.parameters()):
        torch.testing.assert_close(trained, expected, rtol=1e-5, atol=1e-6)


def test_per_model_inputs_train_each_model_on_its_own_rows():
    """Deep pre-training fits a second layer on each seed's own codes: x (G,N,D)."""
    x, xv = _toy()
    xs = torch.stack([x, x.flip(0) * 0.5])
    both, _ = _train("ae", xs, xv, seeds=(0, 1))
    alone, _ = _train("ae", xs[1], xv, seeds=(1,))
    torch.testing.assert_close(both.W[1], alone.W[0], rtol=1e-5, atol=1e-6)


def test_loaded_config_resolves_every_model_of_the_default_protocol(embedded):
    assert MODEL_IDS and embedded.makhzani2014.datasets == ["mnist5k"]
    cfg = run_config(embedded, "makhzani2014", "mnist5k", "ksparse")
    assert (cfg.loop.hidden, cfg.options["k"], cfg.options["alpha"]) == (1000, 25, 3.0)
    assert load(ROOT / "params.yaml").scale in ("default", "tiny")


def test_training_stops_once_every_seed_meets_the_convergence_rule_and_not_inside_a_schedule():
    from sae.train import ConvergenceRule
    x, xv = _toy()
    loose = ConvergenceRule(window=0.1, tolerance=0.5, min_epochs=3)  # met as soon as 4 epochs exist
    capped = _train("ae", x, xv, seeds=(0, 1), epochs=30, stop_at=loose)[1]
    assert capped.stopped_early and len(capped.history) == 4
    full = _train("ae", x, xv, seeds=(0, 1), epochs=30)[1]
    assert not full.stopped_early and len(full.history) == 30
    assert capped.history == full.history[:4]  # the same epochs until the stop
    # not before half the cap: a slow curve is flat over the first short window
    halfway = _train("ae", x, xv, seeds=(0, 1), epochs=30,
                     stop_at=ConvergenceRule(window=0.1, tolerance=0.5, min_epochs=3, not_before=0.5))[1]
    assert halfway.stopped_early and len(halfway.history) == 15 and halfway.history == full.history[:15]
    never = ConvergenceRule(window=0.1, tolerance=1e-12, min_epochs=3)
    assert len(_train("ae", x, xv, seeds=(0,), epochs=8, stop_at=never)[1].history) == 8
    # k-sparse: k falls over the first half of the cap; the stop waits for the final k
    opts = {"k": 2, "k_start": 8, "alpha": 1, "tied": True, "activation": "linear", "decoder": "linear"}
    ks_model, ks = _train("ksparse", x, xv, seeds=(0,), epochs=20, stop_at=loose, model=opts)
    assert ks_model.schedule_end(20) == 10 and len(ks.history) == 14 and ks.history[-1]["k"] == 2
