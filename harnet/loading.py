"""``harnet.load``: one entry point for registry names, model directories and ``hf://`` repos."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import ModelError

log = logging.getLogger("harnet")


def _is_hf(spec: str) -> bool:
    return spec.startswith("hf://")


def resolve_model_dir(spec: str | Path, *, offline: bool | None = None, progress: bool | None = None) -> Path:
    """Turn a model spec into a local harnet model directory, fetching and converting if needed.

    ``spec`` is a path to a model directory, ``hf://org/repo[@revision]``, or a registry name
    (see ``harnet models``). Registry weights are fetched from their pinned source, verified by
    checksum (on every call), converted once without running pickled code, and cached.
    """
    from . import hub, registry

    s = str(spec)
    p = Path(s).expanduser()
    if p.is_dir():
        return p
    if _is_hf(s):
        return hub.snapshot(s, offline=offline)
    if p.suffix or "/" in s or "\\" in s:
        raise ModelError(f"model {s!r}: no such directory; give a model directory, hf://org/repo or a name from `harnet models`")
    entry = registry.get(s)
    return _converted_dir(entry, offline=offline, progress=progress)


def _is_converted(target: Path, entry: Any) -> bool:
    import json

    cfg_path = target / "config.json"
    if not cfg_path.is_file():
        return False
    try:
        cfg = json.loads(cfg_path.read_text())
    except (ValueError, OSError):
        return False
    if cfg.get("provenance", {}).get("checksum") != entry.checksum:
        return False
    # a copy converted by an older harnet (other label names, no step counter) is converted again
    if tuple(cfg.get("labels", ())) != tuple(getattr(entry, "labels", ()) or ()):
        return False
    return getattr(entry, "format", None) != "stepcount-bundle" or "steps" in cfg


def converted_rel(entry: Any) -> Path:
    """Where a registry entry's converted model directory lives, relative to a cache root."""
    return Path("models") / f"{entry.name}-{entry.checksum[:12]}"


def _converted_dir(entry: Any, *, offline: bool | None, progress: bool | None) -> Path:
    """The converted model directory of a registry entry, converting it once if needed.

    Looked for in every cache root (:mod:`harnet.cachedirs`: a shared read-only cache first);
    built, under a lock, in the first writable one, so that jobs starting together on a fresh
    cache convert once and never see a half-written directory (it appears by one rename).
    """
    import os

    from . import cachedirs, hub
    from ._fileio import current_umask, faults_named
    from .convert import convert

    rel = converted_rel(entry)
    raw = hub.fetch(entry, offline=offline, progress=progress)  # re-verified on every call
    for root in cachedirs.roots():
        if _is_converted(root / rel, entry):
            return root / rel
    what = f"the converted {entry.name} model"
    target = cachedirs.writable_root(what, entry.name) / rel
    with cachedirs.building(target, what):
        if _is_converted(target, entry):  # another process converted it while this one waited
            return target
        if target.exists():
            log.warning("converted copy of %s in %s is stale or damaged; converting again", entry.name, target)
        with faults_named(target, what=what):
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            convert(raw, tmp, entry=entry, overwrite=True)
            with faults_named(target, what=what):
                os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp made it 0700: a shared cache must be readable
                if target.exists():
                    shutil.rmtree(target)
                tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def load(
    name_or_path: str | Path = "harnet10",
    *,
    pretrained: bool = True,
    num_classes: int | None = None,
    device: Any = None,
) -> Any:
    """Load a harnet network (an ``nn.Module`` in eval mode).

    Parameters
    ----------
    name_or_path:
        A registry name (``harnet5``, ``harnet10``, ``harnet30`` for the self-supervised
        backbones; classifier names such as ``harnet30-c24-walmsley``; see
        :func:`harnet.list_models`), a harnet model directory, or ``hf://org/repo[@revision]``.
    pretrained:
        ``False`` builds the architecture with random weights (``num_classes`` sets the head;
        a classifier name gives its label count).
    num_classes:
        Size of the classification head. For the backbones (``harnet5/10/30`` or a backbone
        directory) the pre-trained feature extractor is loaded and a **fresh, untrained head**
        of ``num_classes`` outputs (default 2) is attached: fine-tune it before use.
    device:
        Where to put the module (``"cpu"``, ``"cuda"``, a ``torch.device``).

    The returned module has ``.config`` (:class:`harnet.model.HarnetConfig`), ``.labels``,
    ``.hmm`` (HMM parameters or ``None``) and ``.meta`` (the directory's ``config.json``:
    preprocessing, provenance, licence). Published weights are under the University of Oxford
    Academic Use Licence (non-commercial research only); the licence travels in ``.meta``.
    """
    from .model import ARCHITECTURES, build

    s = str(name_or_path)
    if not pretrained:
        if s in ARCHITECTURES:
            m = build(s, num_classes=num_classes or 2)
        else:
            from . import registry

            entry = registry.get(s)
            if entry.labels and num_classes in (None, len(entry.labels)):
                m = build(entry.arch, labels=entry.labels)
            else:
                m = build(entry.arch, num_classes=num_classes or 2)
        if device is not None:
            m.to(device)
        return m.eval()
    from .modeldir import load_model_dir

    d = resolve_model_dir(s)
    return load_model_dir(d, device=device, num_classes=num_classes)


def licence_notice(entry: Any) -> str:
    return (
        f"harnet: {entry.name} weights come from {entry.source_info} under the {entry.licence}"
        + (f" ({entry.licence_url})" if getattr(entry, "licence_url", "") else "")
        + "; by using them you accept its terms."
    )


def print_licence(entry: Any, file: Any = None) -> None:
    print(licence_notice(entry), file=file or sys.stderr)
