"""``offrl data download``: Minari's remote download, failing fast when it cannot work.

Minari downloads from the Hugging Face Hub (``huggingface_hub``, the
``minari[hf]`` extra). Offline, the hub client retries for ~23 s before it
gives up, and sweeps or scripts that try a download would hang that long per
call. So before calling Minari we check, in order: the package is installed
(else name the extra), ``HF_HUB_OFFLINE`` is not set (the hub would refuse
anyway), and the hub answers an HTTP HEAD within ``PROBE_TIMEOUT_S`` seconds
(run in a daemon thread so even a hanging DNS lookup cannot block longer).
The download itself shows the hub client's progress bars.
"""
from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Callable

from offrl.data.store import dataset_dir, is_builtin_id, is_local, missing_dataset_error, validate_id
from offrl.errors import DatasetError, OfflineRLError

PROBE_TIMEOUT_S = 3.0
HF_EXTRA = "hf"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def require_hub_client() -> None:
    """huggingface_hub must be importable (``pip install 'offrl[hf]'`` / ``'minari[hf]'``)."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise OfflineRLError(
            "Downloading Minari datasets needs huggingface_hub: `pip install 'offrl[hf]'` "
            "(or `pip install 'minari[hf]'`)."
        ) from None


def _offline_flag() -> str | None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def probe_hub(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if the hub answers within ``timeout`` seconds, else why not (one line)."""
    url = hub_endpoint()
    result: list[str | None] = []

    def head() -> None:
        try:
            req = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(req, timeout=timeout):
                result.append(None)
        except urllib.error.HTTPError:
            result.append(None)  # the server answered: the network works
        except Exception as e:  # DNS failure, refused, timeout, TLS
            reason = getattr(e, "reason", e)
            result.append(f"{type(reason).__name__}: {reason}")

    thread = threading.Thread(target=head, name="offrl-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not result:
        return f"no answer within {timeout:.0f} s"
    return result[0]


def check_online() -> None:
    """Raise a clear :class:`DatasetError` at once when a download cannot succeed."""
    how = (
        "Download on a machine with internet access and copy the dataset directory into "
        "this machine's store (MINARI_DATASETS_PATH), or generate a built-in dataset with "
        "`offrl data make ID` (see `offrl data list`)."
    )
    flag = _offline_flag()
    if flag:
        raise DatasetError(f"Cannot download: offline mode is on ({flag}={os.environ[flag]}). {how}")
    why = probe_hub()
    if why is not None:
        raise DatasetError(f"Cannot download: {hub_endpoint()} is unreachable ({why}). {how}")


def download(dataset_id: str, force: bool = False, announce: Callable[[str], None] | None = None) -> Path:
    """Download ``dataset_id`` with Minari into the local store; return its directory.

    ``announce`` receives a one-line message once the checks have passed and the
    transfer starts (the CLI prints it).
    """
    validate_id(dataset_id)
    if is_local(dataset_id) and not force:
        return dataset_dir(dataset_id)
    if is_builtin_id(dataset_id):
        from offrl.datagen.builtins import BUILTIN_DATASETS

        if dataset_id not in BUILTIN_DATASETS:
            raise missing_dataset_error(dataset_id)  # a misspelled built-in: names the closest one
        raise DatasetError(
            f"'{dataset_id}' is an offrl built-in dataset: it is not hosted, generate it with "
            f"`offrl data make {dataset_id}`."
        )
    require_hub_client()
    check_online()
    import minari

    if announce is not None:
        announce(f"Downloading '{dataset_id}' from {hub_endpoint()} with Minari ...")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            minari.download_dataset(dataset_id, force_download=force)
    except ValueError as e:  # unknown id, incompatible version
        raise DatasetError(f"Cannot download '{dataset_id}': {e}") from None
    except Exception as e:  # network errors of the hub client (their types vary by version)
        raise DatasetError(f"Downloading '{dataset_id}' failed: {e}") from None
    if not is_local(dataset_id):
        raise DatasetError(f"Minari reported no error but '{dataset_id}' is not in {dataset_dir(dataset_id)}.")
    return dataset_dir(dataset_id)
