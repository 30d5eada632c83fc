"""How the G models of one trained batch are laid out: variants x seeds, variant-major.

A configuration is trained with every seed of params.yaml at once; a ksparse model also
trains its k sweep (002 Figs. 1-3, Tables 1-2) in the same batch, one variant per k. Model
index = variant * len(seeds) + seed position.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layout:
    variants: tuple[dict, ...]   # per variant: the option it changes ({} for the configuration itself)
    seeds: tuple[int, ...]
    derived: dict = field(default_factory=dict)  # option -> one value per variant, set with it (k_start)

    @property
    def n_models(self) -> int:
        return len(self.variants) * len(self.seeds)

    @property
    def model_seeds(self) -> list[int]:
        """The seed of each of the G models."""
        return [s for _ in self.variants for s in self.seeds]

    def per_model(self) -> dict[str, list]:
        """build()'s per_model: for each option a variant sets, its value for each model."""
        per_variant = {k: [v[k] for v in self.variants] for k in dict.fromkeys(k for v in self.variants for k in v)}
        per_variant.update(self.derived)
        return {k: [x for x in values for _ in self.seeds] for k, values in per_variant.items()}

    def models_of(self, variant: int) -> range:
        """Indices of the models of one variant (one per seed)."""
        n = len(self.seeds)
        return range(variant * n, (variant + 1) * n)

    def label(self, variant: int) -> str:
        """'' for the configuration itself, 'k=40' for a variant of it."""
        return ",".join(f"{k}={v}" for k, v in self.variants[variant].items()) if variant else ""

    def model_label(self, g: int) -> str:
        """A name for model g: 'seed0', or 'k40/seed0' for a variant (dvclive curve names)."""
        v, s = divmod(g, len(self.seeds))
        head = self.label(v).replace("=", "").replace(",", "_")
        return f"{head}/seed{self.seeds[s]}" if head else f"seed{self.seeds[s]}"


def layout(model_id: str, options: dict, seeds) -> Layout:
    """The batch of a configuration: its k sweep for ksparse (k_start raised to each k), else one variant."""
    seeds = tuple(int(s) for s in seeds)
    if model_id == "ksparse" and options.get("k_sweep"):
        ks = [options["k"], *options["k_sweep"]]
        return Layout(tuple({"k": k} for k in ks), seeds, {"k_start": [max(options["k_start"], k) for k in ks]})
    return Layout(({},), seeds)
