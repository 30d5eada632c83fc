"""Had training converged? Per trained model and seed, the relative change of the validation
reconstruction curve (dvclive's val_recon) over the last `params.statistics.convergence_window`
of the epochs, against `convergence_tolerance` (sae.base.stats.converged)."""
from __future__ import annotations

from dataclasses import dataclass

from sae.base import stats
from sae.report.results import Ref, RunResults

CURVE = "val_recon"
NOT_TRAINED = "raw pixels are not trained"


@dataclass(frozen=True)
class Convergence:
    ref: Ref
    epochs: int | None              # epochs of the curves (None: no curve)
    changes: tuple                  # relative change per seed (None: curve too short or not finite)
    converged: tuple                # True / False / None per seed
    note: str | None = None         # why there are no curves

    @property
    def n_converged(self) -> int:
        return sum(1 for c in self.converged if c)

    @property
    def n(self) -> int:
        return len(self.converged)

    @property
    def all_converged(self) -> bool:
        return self.n > 0 and self.n_converged == self.n

    def describe(self) -> str:
        return f"{self.n_converged} of {self.n} seeds converged"


def convergence(results: RunResults, paper: str, dataset: str, ref: Ref) -> Convergence:
    """The convergence of ref's models (one per seed) on `dataset`."""
    st = results.params.statistics
    hp, why = results.hparams(paper, dataset, ref.name)
    if hp is None:
        return Convergence(ref, None, (), (), why)
    if hp.get("id") == "raw":
        return Convergence(ref, None, (), (), NOT_TRAINED)
    labels = results.seed_labels(paper, dataset, ref)
    curves = [results.curve(paper, dataset, ref.name, CURVE, label) for label in labels]
    if not labels or any(c is None for c in curves):
        return Convergence(ref, None, (), (), f"no {CURVE} curves under {results.model_dir(paper, dataset, ref.name)}")
    values = [[v for _, v in c] for c in curves]
    changes = tuple(stats.relative_change(v, st.convergence_window, st.convergence_min_epochs) for v in values)
    flags = tuple(stats.converged(v, st.convergence_window, st.convergence_tolerance, st.convergence_min_epochs)
                  for v in values)
    return Convergence(ref, max(len(v) for v in values), changes, flags)


def caveat(rows: list[Convergence]) -> str:
    """The evidence line of a claim whose models did not all converge ('' when they did)."""
    bad = [f"{c.ref} ({c.describe()})" for c in rows if c.note is None and not c.all_converged]
    return f"training had not converged for {', '.join(bad)}" if bad else ""
