"""sae: sparse autoencoders of the classic papers, as a library (no DVC inside)."""
