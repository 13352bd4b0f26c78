"""Make the weights cache complete for offline, read-only use (what ``harnet download`` does).

On a login node: ``harnet download NAME`` fetches the raw file, converts it into a model
directory and exports the ONNX graphs that ``--backend auto`` uses on a CPU, each verified.
Compute nodes that mount the cache read-only and run offline then find everything in place and
write nothing into it (see :mod:`harnet.cachedirs` for what happens when a file is missing).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError

#: fp32 ONNX graphs (``algorithm`` of :func:`harnet.onnx.export.ensure_onnx`) each backend reads.
GRAPHS = {"onnx": ("direct",), "onnx-winograd": ("winograd",), "onnx-int8": (), "torch": ()}


def fill(name_or_spec: str, *, progress: bool | None = None, backend: str = "auto") -> list[tuple[str, Path]]:
    """Fetch and prepare everything ``name_or_spec`` needs offline; return ``(what, path)`` pairs.

    ``name_or_spec``: a registry name or ``hf://org/repo[@rev]``. Verified: the raw file's
    published checksum (registry names), the model directory's weights against the sha256 in its
    ``config.json``, and each ONNX graph's embedded weights sha256 (and its check at export).
    ``backend``: the backend whose files to prepare (default ``auto`` as resolved on a CPU).
    """
    from . import hub
    from .loading import resolve_model_dir
    from .onnx.export import ensure_onnx
    from .predictor import resolve_backend
    from .modeldir import WEIGHTS, read_config, sha256_file

    done: list[tuple[str, Path]] = []
    if not name_or_spec.startswith("hf://"):
        done.append(("raw", hub.fetch(name_or_spec, progress=progress)))
    mdir = resolve_model_dir(name_or_spec, progress=progress)
    cfg = read_config(mdir)
    want = cfg.get("weights_sha256")
    if want and sha256_file(mdir / WEIGHTS) != want:
        raise ModelError(
            f"{mdir / WEIGHTS} does not match the sha256 in its config.json; delete {mdir} and run "
            f"`harnet download {name_or_spec}` again"
        )
    done.append(("model", mdir))
    if cfg.get("kind") == "backbone":
        return done  # a backbone is fine-tuned, never run by predict: no graph to prepare
    for algorithm in GRAPHS[resolve_backend(mdir, backend)]:
        done.append((f"onnx-{algorithm}", ensure_onnx(mdir, algorithm)))
    return done
