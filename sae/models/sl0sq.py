"""PSAE (001 sec. III-C): squared smoothed-L0 sparsity, lambda on reconstruction, GNC over sigma."""

from .core import Autoencoder, final_from, reconstruction_error
from .penalties import smoothed_l0_squared


def gnc_sigma(epoch, n_epochs, sigmas):
    """sigma for a 0-based epoch: the decreasing list `sigmas` spread evenly over the epochs."""
    return sigmas[min(epoch * len(sigmas) // max(1, n_epochs), len(sigmas) - 1)]  # 001 sec. IV-B, GNC


class SL0Sq(Autoencoder):
    """A new model holds the last sigma; on_epoch_start applies the GNC schedule in training."""

    def __init__(self, in_dim, hidden, *, sigmas, lam, **core):
        super().__init__(in_dim, hidden, **core)
        self.sigmas = [float(s) for s in sigmas]
        self.set_hyper(lam=lam)
        self.sigma = self.sigmas[-1]

    def penalty(self, x, h, a=None):
        """(1/(2N)) sum_samples C_s per model; h (G,B,M) -> (G,)."""
        return 0.5 * smoothed_l0_squared(h, self.sigma).mean(dim=-1)  # 001 eq. (9), first term

    def objective(self, x, streams=None):
        h = self.encode(x)
        recon = reconstruction_error(x, self.decode(h))
        # 001 eq. (9): lambda weighs the reconstruction, (lam/(2N)) sum ||x - y||^2
        return self.penalty(x, h) + 0.5 * self.lam * recon, recon

    def schedule_end(self, n_epochs) -> int:
        return final_from(lambda e: gnc_sigma(e, n_epochs, self.sigmas), n_epochs)

    def on_epoch_start(self, epoch, n_epochs):
        self.sigma = gnc_sigma(epoch, n_epochs, self.sigmas)
        return {"sigma": self.sigma}
