"""L1SAE (000 sec. II, Algorithm 1): non-smooth l1 on the codes by a penalty method.

Per step: Y = soft_threshold(Z, alpha*beta/N) (block 1, exact), then one gradient step on
(1/N)||X - X_hat||_F^2 + (1/(2 alpha))||Y - Z||_F^2 + weight decay (block 2);
alpha shrinks by f over T stages so Y = Z is enforced ever more tightly. N is the batch: the
minibatch form of eq. (5) with the paper's alpha = our alpha * (training rows / batch).
"""


from .core import Autoencoder, final_from


def soft_threshold(z, t):
    """Element-wise prox of t*|.|: sign(z) * max(|z| - t, 0); any shape."""
    return z.sign() * (z.abs() - t).clamp_min(0)  # 000 eq. (9)


def penalty_alpha(epoch, n_epochs, alpha0, f, T):
    """alpha for a 0-based epoch: alpha0 * f^(t-1) with stage t = 1..T spread evenly over epochs."""
    stage = min(epoch // max(1, n_epochs // T), T - 1)  # 000 Algorithm 1, line 3
    return alpha0 * f**stage


def proximal_coupling(y, z, alpha):
    """(1/(2 alpha)) ||Y - Z||_F^2 per model, SUMMED over the batch; y, z (G,B,M) -> (G,)."""
    return (y - z).pow(2).sum(dim=(-2, -1)) / (2 * alpha)  # 000 eq. (10), second term


class L1Prox(Autoencoder):
    """The default objective recon + penalty + weight decay is eq. (10) once penalty() is the
    coupling term; the codes Z are the encoder outputs h. A new model holds the last stage's
    alpha; on_epoch_start applies the schedule during training."""

    def __init__(self, in_dim, hidden, *, alpha0, f, T, beta, final_only=False, **core):
        super().__init__(in_dim, hidden, **core)
        self.alpha0, self.f, self.T, self.beta, self.final_only = alpha0, f, T, beta, final_only
        self.alpha = alpha0 * f ** (T - 1)
        self.snapshots = []  # filled during training by on_epoch_end

    def penalty(self, x, h, a=None):
        y = soft_threshold(h.detach(), self.alpha * self.beta / h.shape[-2])  # 000 eq. (8), N = batch
        return proximal_coupling(y, h, self.alpha)

    def on_epoch_start(self, epoch, n_epochs):
        self.alpha = self.alpha_at(epoch, n_epochs)
        return {"alpha": self.alpha}

    def alpha_at(self, epoch, n_epochs) -> float:
        """alpha of a 0-based epoch: Algorithm 1's stages, or the last stage's from the start (final_only)."""
        return penalty_alpha(n_epochs - 1 if self.final_only else epoch, n_epochs, self.alpha0, self.f, self.T)

    def schedule_end(self, n_epochs) -> int:
        return final_from(lambda e: self.alpha_at(e, n_epochs), n_epochs)

    def on_train_end(self, epoch, n_epochs):
        if not self.snapshots or self.snapshots[-1]["epoch"] != epoch:  # stopped early, inside the last stage
            self.snapshots.append({"epoch": epoch, "alpha": self.alpha, "W": self.W.detach().cpu().clone()})

    def on_epoch_end(self, epoch, n_epochs):
        """Keep the encoder weights W (G,M,D) at the end of each alpha stage (000 Fig. 1c) in
        self.snapshots: [{"epoch", "alpha", "W"}]."""
        last = epoch + 1 == n_epochs
        if last or self.alpha_at(epoch + 1, n_epochs) != self.alpha:
            self.snapshots.append({"epoch": epoch, "alpha": self.alpha, "W": self.W.detach().cpu().clone()})

    def extra_state(self) -> dict:
        return {"snapshots": self.snapshots}  # a resumed run keeps the stages it had already passed

    def load_extra_state(self, state: dict) -> None:
        self.snapshots = list(state.get("snapshots", []))
