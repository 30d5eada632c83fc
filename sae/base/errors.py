"""Errors that stop a stage with one clear line (see stages/_cli.py)."""


class SaeError(Exception):
    """Base class: the message is printed as one line, exit code non-zero."""


class ParamError(SaeError):
    """A bad key or value in params.yaml."""


class DataError(SaeError):
    """A missing, corrupt or malformed data file."""


class TrainingError(SaeError):
    """Training diverged (NaN/inf loss) or cannot continue."""


def read_json(path, required=(), remedy: str = "rerun the stage that writes it") -> dict:
    """A JSON object file with the `required` keys, or DataError naming the file and the remedy."""
    import json
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; {remedy}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}); {remedy}") from None
    missing = [k for k in required if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}; {remedy}")
    return data
