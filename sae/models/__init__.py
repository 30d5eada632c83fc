"""Autoencoder models of the reproduced papers: build(model_id, in_dim, hidden, n_models=G, **options)."""

from .core import Autoencoder, activation_derivative
from .registry import MODEL_IDS, REGISTRY, build

__all__ = ["Autoencoder", "MODEL_IDS", "REGISTRY", "activation_derivative", "build"]
