"""Seeded random streams for G models trained as one batch.

Model g of a batch draws from the generator of its own seed, so its numbers are exactly
those of a run that trains it alone with that seed (the batched-vs-sequential tests rely on
it). Models that share a seed (the points of a 003 sweep) share one generator: each draw is
made once per distinct seed and handed to every model of that seed.

Each use of a seed gets its own stream (`purpose`: init, train (batch order), noise
(corruption, dropout, Gibbs sampling), finetune, classify), derived with numpy's
SeedSequence: weight init, batch order and noise are independent, so a model that draws
no noise (a coefficient of 0) still sees the batches of its seed.
"""
from __future__ import annotations

import numpy as np
import torch

PURPOSES = ("init", "train", "noise", "finetune", "classify")


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for (seed, purpose): independent streams from one user seed."""
    state = np.random.SeedSequence([int(seed), PURPOSES.index(purpose)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


class Streams:
    """One torch.Generator per distinct seed of `seeds`; draws come back stacked per model (G, ...).

    seeds: the seed of each of the G models (repeats allowed); device: where draws are made.
    """

    def __init__(self, seeds, device, purpose: str):
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self.purpose = purpose
        distinct = list(dict.fromkeys(self.seeds))
        self.generators = [torch.Generator(device=self.device).manual_seed(stream_seed(s, purpose)) for s in distinct]
        position = {s: i for i, s in enumerate(distinct)}
        self.index = [position[s] for s in self.seeds]
        self.identity = self.index == list(range(len(distinct)))
        self._index = torch.tensor(self.index, device=self.device)

    def __len__(self) -> int:
        return len(self.seeds)

    def expand(self, per_generator: torch.Tensor) -> torch.Tensor:
        """(U, ...) draws of the distinct generators -> (G, ...) draws of the models."""
        return per_generator if self.identity else per_generator.index_select(0, self._index)

    def _stack(self, fn, shape, dtype) -> torch.Tensor:
        return self.expand(torch.stack([fn(shape, generator=g, device=self.device, dtype=dtype)
                                        for g in self.generators]))

    def rand(self, *shape, dtype=torch.float32) -> torch.Tensor:
        """Uniform [0, 1) draws, (G, *shape)."""
        return self._stack(torch.rand, shape, dtype)

    def randn(self, *shape, dtype=torch.float32) -> torch.Tensor:
        """Standard normal draws, (G, *shape)."""
        return self._stack(torch.randn, shape, dtype)

    def permutations(self, n: int) -> torch.Tensor:
        """One random permutation of range(n) per DISTINCT seed: (U, n) int64 (expand() maps to models)."""
        return torch.stack([torch.randperm(n, generator=g, device=self.device) for g in self.generators])

    def get_state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states) -> None:
        if len(states) != len(self.generators):
            raise ValueError(f"{len(states)} generator states for {len(self.generators)} generators")
        for g, s in zip(self.generators, states):
            g.set_state(s.to(g.get_state().device))

    def renew(self) -> None:
        """Fresh generator objects in the same states (a failed CUDA graph capture can leave one unusable)."""
        states = self.get_state()
        self.generators = [torch.Generator(device=self.device) for _ in self.generators]
        self.set_state(states)


def init_generators(seeds, purpose: str = "init") -> list[torch.Generator]:
    """CPU generators for weight initialisation, one per model (weights are drawn on the CPU, then
    moved, so a model starts from the same weights on every device)."""
    return [torch.Generator().manual_seed(stream_seed(s, purpose)) for s in seeds]
