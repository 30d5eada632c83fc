"""A training step captured once per epoch as a CUDA graph and replayed for every full batch.

At the papers' sizes a GPU step is bound by kernel launches, not arithmetic: ~50 small
kernels issued from Python. Replaying a captured graph issues them as one launch. The CPU
path never comes here.

What a capture bakes in (learning rate, k of the ksparse schedule, l1prox's alpha, the
epoch's loss accumulators) changes only between epochs, so the loop captures anew at the
start of each epoch; the replays run the very kernels of the eager step.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on a side stream before the first capture (lazy library state, optimiser buffers)


class StepGraph:
    """`step(xb)` captured for batches shaped like `example` (G,B,D); `replay(batch)` trains on it.

    streams: the sae.base.rng.Streams the step draws noise from; registered so that each replay
    draws fresh numbers and advances them, as an eager step would.
    """

    def __init__(self, step: Callable[[torch.Tensor], None], example: torch.Tensor, streams, pool=None):
        self.xb = torch.empty_like(example)  # the captured input
        self.graph = torch.cuda.CUDAGraph()
        for g in streams.generators:
            self.graph.register_generator_state(g)
        with torch.cuda.graph(self.graph, pool=pool):
            step(self.xb)

    def replay(self, batch: torch.Tensor) -> None:
        self.xb.copy_(batch)
        self.graph.replay()


def warm_up(step: Callable[[torch.Tensor], None], batch: torch.Tensor) -> None:
    """Run a real training step on a side stream, as CUDA graph capture requires before the first capture."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step(batch)
    torch.cuda.current_stream().wait_stream(side)


class EpochGraphs:
    """The graphs of one fit(): a capture per epoch in one shared memory pool (an epoch's graph is
    never replayed after the next is captured); eager steps for good once a capture fails."""

    def __init__(self, name: str):
        self.name = name
        self.pool = torch.cuda.graph_pool_handle()
        self.graph, self.epoch, self.warm, self.enabled = None, None, 0, True

    def run(self, epoch: int, step, gather, rows, streams) -> bool:
        """Train on the full batch `rows` through the graph; False when the caller must step eagerly."""
        if not self.enabled:
            return False
        batch = gather(rows)
        if self.warm < WARMUP_STEPS:
            warm_up(step, batch)
            self.warm += 1
            return True
        if self.epoch != epoch:  # each epoch bakes in its own lr, schedules and accumulators
            try:  # the last epoch's graph, holding the pool, is dropped only once this one exists
                self.graph, self.epoch = StepGraph(step, batch, streams, self.pool), epoch
            except RuntimeError as err:  # an op that cannot be captured: train eagerly
                log.warning("%s: no CUDA graph (%s); training eagerly", self.name, str(err).splitlines()[0])
                self.enabled, self.graph = False, None
                streams.renew()  # a failed capture can leave a generator marked as capturing
                return False
        self.graph.replay(batch)
        return True
