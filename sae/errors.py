"""Errors that stop a stage with one clear line (see stages/_cli.py)."""


class SaeError(Exception):
    """Base class: the message is printed as one line, exit code non-zero."""


class ParamError(SaeError):
    """A bad key or value in params.yaml."""


class DataError(SaeError):
    """A missing, corrupt or malformed data file."""


class TrainingError(SaeError):
    """Training diverged (NaN/inf loss) or cannot continue."""
