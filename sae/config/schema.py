"""The typed schema of params.yaml: every group, key, type and range, with its meaning.

params.yaml is composed by Hydra from conf/ (README: Changing parameters); this module
describes the composed file. Every class forbids unknown keys; sae.config turns the first
violation into one line naming the key path, and checks the cross-references a single
group cannot see (lists that must be prepared, model names, k <= hidden).

Model hyper-parameters have one class per registry id (OPTIONS); their defaults are the
registry's defaults, so a protocol only writes what a paper sets.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sae.base import catalog as C

# ---------------------------------------------------------------- value types

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, lt=1)]
OpenUnit = Annotated[float, Field(gt=0, lt=1)]
Share = Annotated[float, Field(ge=0, le=1)]
Momentum = Annotated[float, Field(ge=0, lt=1)]  # >= 1 never converges
DatasetId = Literal[C.DATASET_IDS]  # type: ignore[valid-type]
ModelId = Literal[C.MODEL_IDS]  # type: ignore[valid-type]
Activation = Literal[C.ACTIVATIONS]  # type: ignore[valid-type]
View = Literal[C.VIEWS]  # type: ignore[valid-type]
Optimizer = Literal[C.OPTIMIZERS]  # type: ignore[valid-type]
Schedule = Literal[C.SCHEDULES]  # type: ignore[valid-type]


class Strict(BaseModel):
    """No unknown keys, no type coercion ("2" is not 2, true is not 1), no NaN or inf."""
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _distinct(values: list, what: str = "value") -> list:
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"repeated {what} {v!r}")
        seen.add(v)
    return values


# ---------------------------------------------------------------- data (prepare@D)


class SplitData(Strict):
    """A set with an official test split: a stratified, seeded validation split off its training set."""
    val: NonNegInt = Field(description="validation rows split off the training set")
    split_seed: NonNegInt = Field(description="seed of the validation split")
    std_eps: NonNegFloat = Field(description="added to the per-dimension std when standardising "
                                             "(003 footnote 2: 0.1 for MNIST)")


class HeldOutData(SplitData):
    """A set with no official test split (the embedded digits): test rows held out too."""
    test: PosInt = Field(description="test rows held out")


class NorbData(SplitData):
    crop: PosInt = Field(description="inner crop of each 96x96 channel (002 sec. 4.1: 64)")
    size: PosInt = Field(description="bicubic resize of the crop (002 sec. 4.1: 32)")


class PixelPatchData(Strict):
    """Random square patches of pixels (003 sec. 3: 50,000 random 8x8 CIFAR-10 patches)."""
    n_train: PosInt
    n_val: PosInt
    n_test: PosInt
    size: Annotated[int, Field(ge=2)] = Field(description="patch side in pixels")
    split_seed: NonNegInt
    std_eps: NonNegFloat


class PatchData(PixelPatchData):
    """Patches with per-patch LCN and ZCA fitted on the training patches (002 sec. 4.1)."""
    lcn_eps: NonNegFloat = Field(description="(p - mean) / sqrt(var + lcn_eps) on 0-255 pixels")
    zca_eps: NonNegFloat = Field(description="ZCA eigenvalue regulariser (Coates et al. 2011: 0.1)")


DATA_SCHEMAS = {"held_out": HeldOutData, "split": SplitData, "norb": NorbData, "patches": PatchData,
                "pixel_patches": PixelPatchData}

# ---------------------------------------------------------------- the training loop


class LoopLayer(Strict):
    """Training-loop settings; a layer of the protocol sets some of them (the rest come from
    the layers below: sae.config.protocol.run_config)."""
    hidden: Optional[PosInt] = Field(None, description="code size")
    epochs: Optional[PosInt] = None
    batch: Optional[PosInt] = None
    input: Optional[View] = Field(None, description="what the model sees of the prepared set "
                                                    "(sae.data.prepared.input_view)")
    optimizer: Optional[Optimizer] = None
    lr: Optional[PosFloat] = Field(None, description="learning rate (> 0)")
    momentum: Optional[Momentum] = Field(None, description="SGD momentum, in [0, 1)")
    schedule: Optional[Schedule] = Field(None, description="constant, or linear from lr to final_lr")
    final_lr: Optional[PosFloat] = None
    hold: Optional[OpenUnit] = Field(None, description="linear schedule: the fraction of the epochs (the last ones) "
                                                       "trained at final_lr, the rate reaching it before them; unset: "
                                                       "the decay runs to the last epoch")
    checkpoint_every: Optional[NonNegInt] = Field(None, description="epochs between checkpoints (0: none)")
    stop_at_convergence: Optional[bool] = Field(None, description="end training before `epochs` (then a cap) once "
                                                                  "every seed meets the convergence rule of "
                                                                  "`statistics`; a declared reduction")


class Loop(Strict):
    """The resolved loop settings of one model on one dataset (every key set)."""
    hidden: PosInt
    epochs: PosInt
    batch: PosInt
    input: View
    optimizer: Optimizer
    lr: PosFloat
    momentum: Momentum
    schedule: Schedule
    final_lr: PosFloat
    hold: Optional[OpenUnit] = None  # unset: left out of hparams.json (model_dump), as before it existed
    checkpoint_every: NonNegInt
    stop_at_convergence: bool


LOOP_KEYS = tuple(Loop.model_fields)

# ---------------------------------------------------------------- model hyper-parameters


class ModelOptions(LoopLayer):
    """Options every autoencoder accepts (sae.models.core.Autoencoder), and loop overrides."""
    activation: Activation = "sigmoid"
    decoder: Literal[C.DECODERS] = "linear"  # type: ignore[valid-type]
    tied: bool = False
    weight_decay: NonNegFloat = Field(0.0, description="lambda (||W_enc||^2 + ||W_dec||^2), 000 eq. 2")
    unit_norm: bool = Field(False, description="encoder rows held at unit length (003 sec. 3.1)")
    init: Literal[C.INITS] = "glorot"  # type: ignore[valid-type]
    init_std: PosFloat = Field(0.01, description="std of the gaussian init (002 sec. 4.2.2: 0.01)")


class RawOptions(LoopLayer):
    """Raw pixels: no model options."""


class KLOptions(ModelOptions):
    beta: NonNegFloat = Field(1.0, description="weight of sum_j KL(rho || rho_hat_j)")
    rho: OpenUnit = Field(0.01, description="target mean activation")


class L1Options(ModelOptions):
    lam: NonNegFloat = Field(1e-3, description="weight of sum_j |h_j| (plain subgradient)")


class StudentTOptions(ModelOptions):
    beta: NonNegFloat = Field(3.0, description="weight of sum_j log(1 + h_j^2)")


class DAEOptions(ModelOptions):
    corruption: Literal[C.CORRUPTIONS] = "mask"  # type: ignore[valid-type]
    level: NonNegFloat = Field(0.2, description="mask: fraction of inputs zeroed (< 1); gaussian: the noise "
                                                "variance sigma^2 (003 Thm. 3)")


class DropoutOptions(ModelOptions):
    p_hidden: Probability = Field(0.5, description="dropout rate of the codes")
    p_input: Probability = Field(0.0, description="dropout rate of the input (002 Table 1: 0.2 with denoising)")


class NCAEOptions(KLOptions):
    beta: NonNegFloat = 3.0
    rho: OpenUnit = 0.05
    alpha: NonNegFloat = Field(0.003, description="(alpha/2) sum of squared negative weights")


class L1ProxOptions(ModelOptions):
    beta: NonNegFloat = Field(0.5, description="weight of the l1 term (000 eq. 2)")
    alpha0: PosFloat = Field(1.0, description="initial penalty parameter (000 Alg. 1)")
    f: Annotated[float, Field(gt=0, le=1)] = Field(0.6, description="alpha <- f alpha between stages")
    T: PosInt = Field(5, description="number of alpha stages")
    final_only: bool = Field(False, description="train every epoch at the last stage's alpha, alpha0 f^(T-1) "
                                                "(the control of 000 Fig. 1c: the final problem without the "
                                                "continuation)")


class SL0SqOptions(ModelOptions):
    sigmas: list[PosFloat] = Field([1.0, 0.5, 0.25, 0.1], min_length=1,
                                   description="the decreasing GNC sequence of sigma (001 sec. IV-B)")
    lam: NonNegFloat = Field(1000.0, description="weight of the reconstruction term (001 eq. 9)")

    @field_validator("sigmas")
    @classmethod
    def _non_increasing(cls, v):
        if any(a < b for a, b in zip(v, v[1:])):
            raise ValueError("must be non-increasing (graduated non-convexity lowers sigma)")
        return v


class KSparseOptions(ModelOptions):
    activation: Activation = "linear"
    tied: bool = True
    init: Literal[C.INITS] = "gaussian"  # type: ignore[valid-type]
    k: PosInt = Field(25, description="units kept while training (002 sec. 2.2)")
    k_start: PosInt = Field(100, description="k at the first epoch, lowered linearly to k over the first half "
                                             "(002 sec. 4.2.1); raised to k when below it")
    alpha: Annotated[float, Field(ge=1)] = Field(3.0, description="alpha*k units kept at encoding (002 sec. 2.2)")
    k_sweep: list[PosInt] = Field([], description="further k values trained with this model, same settings "
                                                 "(002 Figs. 1-3, Tables 1-2)")

    @field_validator("k_sweep")
    @classmethod
    def _distinct_k(cls, v):
        return _distinct(v, "k")


class ContractiveOptions(ModelOptions):
    activation: Activation = "relu"
    tied: bool = True
    lam: NonNegFloat = Field(0.1, description="regularisation coefficient (003 eqs. 9, 11)")


class SAE0Options(ModelOptions):
    tied: bool = True
    lam: NonNegFloat = Field(0.1, description="regularisation coefficient (003 eq. 13)")


class EDAEOptions(ModelOptions):
    activation: Activation = "relu"
    tied: bool = True
    level: NonNegFloat = Field(0.1, description="variance of the Gaussian corruption (003 sec. 3.1.1)")


class RBMOptions(LoopLayer):
    """Restricted Boltzmann machine (002's baseline rows), trained by contrastive divergence."""
    visible: Literal[C.VISIBLE_UNITS] = Field("bernoulli", description="bernoulli for inputs in [0, 1], "  # type: ignore[valid-type]
                                                                        "gaussian for standardised inputs")
    cd_k: PosInt = Field(1, description="Gibbs steps of CD-k (Hinton 2002)")
    persistent: bool = Field(False, description="persistent CD: the chains carry over between batches (Tieleman 2008)")
    weight_decay: NonNegFloat = Field(0.0, description="weight_decay * ||W||^2 (002 Table 2: RBM (weight decay))")
    init_std: PosFloat = Field(0.01, description="std of the gaussian init of W (Hinton's guide: 0.01)")


OPTIONS: dict[str, type[LoopLayer]] = {
    "raw": RawOptions, "ae": ModelOptions, "kl": KLOptions, "l1": L1Options, "studentt": StudentTOptions,
    "dae": DAEOptions, "dropout": DropoutOptions, "ncae": NCAEOptions, "l1prox": L1ProxOptions,
    "sl0sq": SL0SqOptions, "ksparse": KSparseOptions, "cae": ContractiveOptions, "mdae": ContractiveOptions,
    "sae0": SAE0Options, "edae": EDAEOptions, "rbm": RBMOptions,
}

# ---------------------------------------------------------------- shared evaluation


class Classify(Strict):
    """Logistic regression (softmax) on fixed features (002 Tables 1-2; 001's one-layer softmax):
    every l2 of the grid is trained at once; the lowest validation error wins."""
    l2: list[NonNegFloat] = Field(min_length=1)
    epochs: PosInt
    batch: PosInt
    lr: PosFloat
    optimizer: Optimizer
    momentum: Momentum = Field(description="sgd only")


class Evaluate(Strict):
    alphas: list[Annotated[float, Field(ge=1)]] = Field(min_length=1, description="ksparse: alpha*k units kept, "
                                                                                  "alpha chosen on validation")
    hist_bins: PosInt = Field(description="bins of the hidden-activity histogram (002 Fig. 4)")
    batch: PosInt = Field(description="rows encoded at a time")


class Statistics(Strict):
    """How claims are decided from the per-seed values (sae.base.stats)."""
    test: Literal["welch"] = Field(description="Welch's t-test on the per-seed values")
    level: OpenUnit = Field(description="significance level of a verdict")
    convergence_window: OpenUnit = Field(description="fraction of the epochs at the end of training over which "
                                                     "the validation reconstruction is compared")
    convergence_tolerance: PosFloat = Field(description="relative change over that window under which a model "
                                                        "counts as converged")
    convergence_min_epochs: PosInt = Field(description="the window spans at least this many epochs")
    stop_not_before: Share = Field(description="share of the epoch cap that trains before a stop at convergence "
                                              "(<paper>.optim.stop_at_convergence) may end training")


# ---------------------------------------------------------------- paper protocols


class FinetuneLayer(Strict):
    epochs: Optional[PosInt] = None
    deep_epochs: Optional[list[NonNegInt]] = Field(None, description="epochs of: softmax alone; second layer + "
                                                                     "softmax; all layers (002 sec. 4.6)")
    batch: Optional[PosInt] = None
    optimizer: Optional[Optimizer] = None
    lr: Optional[list[PosFloat]] = Field(None, description="rates tried; the best on validation is kept")
    deep_lr: Optional[list[PosFloat]] = Field(None, description="rates tried for the deep network (unset: lr)")
    final_lr: Optional[PosFloat] = None
    momentum: Optional[Momentum] = None
    weight_decay: Optional[NonNegFloat] = Field(None, description="weight_decay * ||W||^2 (000 Table I: lambda2)")
    deep_hidden: Optional[PosInt] = Field(None, description="width of the second layer; unset = the first's "
                                                            "(002 sec. 4.6)")
    layer2_epochs: Optional[PosInt] = Field(None, description="epochs of the second layer's greedy pre-training; "
                                                              "unset = the first layer's (002 sec. 4.6)")
    keep_regulariser: Optional[bool] = Field(None, description="the pre-training regulariser (input noise, "
                                                               "dropout) stays on while fine-tuning (002 sec. 4.5)"
                                                               "; off: the networks differ only in their weights")

    @field_validator("deep_epochs")
    @classmethod
    def _three_phases(cls, v):
        if v is not None and (len(v) != 3 or v[2] < 1):
            raise ValueError("expected 3 integers >= 0 (softmax; second layer + softmax; all layers), the last >= 1")
        return v


class FinetuneSettings(Strict):
    """The resolved fine-tuning settings of one dataset."""
    epochs: PosInt
    deep_epochs: list[NonNegInt]
    batch: PosInt
    optimizer: Optimizer
    lr: list[PosFloat] = Field(min_length=1)
    deep_lr: Optional[list[PosFloat]] = None
    final_lr: PosFloat
    momentum: Momentum
    weight_decay: NonNegFloat
    deep_hidden: Optional[PosInt] = None
    layer2_epochs: Optional[PosInt] = None
    keep_regulariser: bool


class Finetune(Strict):
    models: list[str] = Field(description="models of the paper's fine-tuning tables")
    kinds: list[Literal[C.FINETUNE_KINDS]] = Field(min_length=1)  # type: ignore[valid-type]
    deep_models: list[str] = Field(description="models also stacked into the deep network")
    without_pretraining: list[str] = Field(description="models whose network is also trained from random "
                                                       "weights (the 'none' row)")
    settings: FinetuneLayer
    datasets: dict[str, FinetuneLayer] = Field(default_factory=dict, description="per paper or run dataset")

    @field_validator("models", "kinds", "deep_models", "without_pretraining")
    @classmethod
    def _no_repeats(cls, v):
        return _distinct(v)


class Filters(Strict):
    """Models trained only for their filters (002 Fig. 3: CIFAR-10 patches)."""
    datasets: list[DatasetId]
    models: list[str]


class AEProtocol(Strict):
    """One paper's autoencoder experiments: datasets x models, trained, evaluated, fine-tuned."""
    datasets: list[DatasetId] = Field(description="datasets the tables are measured on (each stands in for a "
                                                  "paper dataset, or is one)")
    models: list[str] = Field(min_length=1, description="names of `model` entries, trained and evaluated "
                                                        "on every dataset")
    optim: LoopLayer = Field(description="loop defaults of every model")
    train: dict[str, LoopLayer] = Field(description="per paper dataset (or run dataset) loop settings")
    model: dict[str, dict] = Field(description="name -> {id: registry id (default: the name), options, "
                                               "datasets: {dataset: options}}")
    finetune: Optional[Finetune] = None
    filters: Optional[Filters] = None

    @field_validator("datasets", "models")
    @classmethod
    def _no_repeats(cls, v):
        return _distinct(v)


class SweepGrid(Strict):
    coefficients: list[NonNegFloat] = Field(min_length=1, description="lambda; the noise variance for dae/edae")
    activations: list[Literal[C.SWEEP_ACTIVATIONS]] = Field(min_length=1)  # type: ignore[valid-type]
    unit_norm: list[bool] = Field(min_length=1)

    @field_validator("coefficients", "activations", "unit_norm")
    @classmethod
    def _no_repeats(cls, v):
        return _distinct(v)


class SweepLayer(Strict):
    hidden: Optional[PosInt] = None
    epochs: Optional[PosInt] = None
    batch: Optional[PosInt] = None
    lr: Optional[PosFloat] = None
    momentum: Optional[Momentum] = None
    train_rows: Optional[NonNegInt] = Field(None, description="training rows used (0: all)")
    eval_split: Optional[Literal[C.EVAL_SPLITS]] = None  # type: ignore[valid-type]
    input: Optional[View] = None


class SweepSettings(Strict):
    """The resolved 003 protocol of one dataset."""
    hidden: PosInt
    epochs: PosInt
    batch: PosInt
    lr: PosFloat
    momentum: Momentum
    train_rows: NonNegInt
    eval_split: Literal[C.EVAL_SPLITS]  # type: ignore[valid-type]
    input: View


class SweepProtocol(Strict):
    """003's coefficient sweeps: every model x activation x constraint x coefficient."""
    datasets: list[DatasetId]
    models: list[Literal[C.SWEEP_MODELS]] = Field(min_length=1)  # type: ignore[valid-type]
    grid: SweepGrid
    protocol: SweepLayer = Field(description="003 sec. 3 'Experimental protocols'")
    train: dict[str, SweepLayer] = Field(default_factory=dict, description="per paper or run dataset")

    @field_validator("datasets", "models")
    @classmethod
    def _no_repeats(cls, v):
        return _distinct(v)


# ---------------------------------------------------------------- the whole file


class Params(Strict):
    scale: Literal[C.SCALES] = Field(description="the conf/scale the file was composed with")  # type: ignore[valid-type]
    seeds: list[NonNegInt] = Field(min_length=1, description="every model is trained with each seed")
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")] = Field(
        description="auto (CUDA when present, else the CPU), cpu, cuda or cuda:N")
    threads: NonNegInt = Field(description="torch CPU threads of a stage (0: the cores this process may use, "
                                           "divided among DVC queue workers)")
    datasets: list[DatasetId] = Field(min_length=1, description="datasets downloaded and prepared")
    data: dict[DatasetId, dict] = Field(description="per dataset: its prepare settings (DATA_SCHEMAS)")
    classify: Classify
    evaluate: Evaluate
    statistics: Statistics
    amini2018: AEProtocol
    seyyedsalehi2017: AEProtocol
    makhzani2014: AEProtocol
    arpit2016: SweepProtocol

    @field_validator("seeds", "datasets")
    @classmethod
    def _no_repeats(cls, v):
        return _distinct(v)

    def protocol(self, paper: str):
        """The protocol group of `paper` (ParamError naming it when there is none)."""
        if paper not in C.PAPER_IDS:
            from sae.config import unknown
            from sae.base.errors import ParamError
            raise ParamError(unknown("paper", paper, C.PAPER_IDS))
        return getattr(self, paper)
