"""What every stage imports: the stage runner (cli), errors, the device, the catalog of names,
seeded streams (rng), statistics, metrics and the optimisers. One directory, so dvc.yaml lists it
as one dependency: each dep is four lines of dvc.lock, which DVC reads and rewrites after every
stage (README: Benchmarks). Importing the package imports none of them."""
