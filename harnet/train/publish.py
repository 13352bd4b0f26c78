"""Publish a harnet model directory to a Hugging Face model repo, with a generated model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import HarnetError, ModelError

#: Files of a model directory that are uploaded (nothing else in the folder is).
UPLOAD_FILES = ("config.json", "model.safetensors", "hmm.json", "model.onnx", "training.json", "README.md")


def model_card(cfg: dict[str, Any], repo_id: str, *, license: str = "other") -> str:
    """A model card (README.md with Hugging Face metadata) built from a model's ``config.json``."""
    prov = dict(cfg.get("provenance") or {})
    labels = list(cfg.get("labels") or [])
    kind = cfg.get("kind", "classifier")
    licence = prov.get("licence") or "not recorded: ask the model's author"
    lines = [
        "---",
        "library_name: harnet",
        f"license: {license}",
        "tags:",
        "- harnet",
        "- accelerometer",
        "- human-activity-recognition",
        "- wearables",
        "---",
        "",
        f"# {repo_id}",
        "",
        cfg.get("description") or f"A harnet {cfg.get('arch')} {kind}.",
        "",
        "## Model",
        "",
        f"- kind: {kind}",
        f"- architecture: {cfg.get('arch')} ({cfg.get('window_sec')}-s windows at {cfg.get('sample_rate', 30)} Hz, "
        "input (N, 3, T) in g with gravity)",
    ]
    if labels:
        lines.append(f"- classes (output order): {', '.join(labels)}")
    lines.append(f"- HMM smoothing parameters: {'hmm.json' if cfg.get('_has_hmm') else 'none'}")
    lines.append(f"- weights sha256: `{cfg.get('weights_sha256', '')}`")
    lines += ["", "## Licence of the weights", "", str(licence), ""]
    lines += ["## Preprocessing the model expects", "", "```json", json.dumps(cfg.get("preprocessing", {}), indent=1), "```", ""]
    training = cfg.get("training")
    if training:
        lines += ["## Training", ""]
        for k in ("source", "init", "training_data", "training_data_sha256", "training_windows",
                  "validation_windows", "participants"):
            if k in prov and prov[k] is not None:
                lines.append(f"- {k.replace('_', ' ')}: {prov[k]}")
        lines.append(f"- best epoch: {training.get('best_epoch')}")
        lines += ["", "Options:", "", "```json", json.dumps(training.get("options", {}), indent=1), "```", ""]
    lines += [
        "## Use",
        "",
        "```python",
        "import harnet",
        f'model = harnet.load("hf://{repo_id}")',
        "```",
        "",
        "```",
        f"harnet predict participant.cwa --model hf://{repo_id} --out results/",
        "```",
        "",
        "## Citation",
        "",
        "Yuan H, Chan S, Creagh AP, et al. Self-supervised learning for human activity recognition "
        "using 700,000 person-days of wearable data. npj Digital Medicine 7, 91 (2024).",
        "",
        f"harnet version: {prov.get('harnet_version', 'unknown')}",
        "",
    ]
    return "\n".join(lines)


def push(
    model_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    license: str = "other",
    endpoint: str | None = None,
    api: Any = None,
) -> Any:
    """Upload a model directory to the Hugging Face repo ``repo_id`` (created if missing).

    The directory is checked first (it must load: config, weights and checksum). A README.md
    model card is written into it from ``config.json`` unless one exists. Only the model's own
    files (:data:`UPLOAD_FILES`) are uploaded. Returns the commit info from ``upload_folder``.
    """
    from .._fileio import atomic_write_text
    from ..modeldir import HMM_FILE, load_model_dir, read_config

    d = Path(model_dir)
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HarnetError(f"repo {repo_id!r} must look like org/name")
    cfg = read_config(d)
    try:
        load_model_dir(d)  # refuses a directory whose weights do not match its config
    except ModelError as e:
        raise ModelError(f"{d} does not load, so it is not pushed: {e}") from None
    card = d / "README.md"
    if not card.exists():
        atomic_write_text(card, model_card({**cfg, "_has_hmm": (d / HMM_FILE).is_file()}, repo_id, license=license))
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=endpoint, token=token, library_name="harnet")
    api.create_repo(repo_id, token=token, private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(d),
        commit_message=commit_message or f"Upload harnet {cfg.get('arch')} model",
        token=token,
        revision=revision,
        allow_patterns=[f for f in UPLOAD_FILES if (d / f).is_file()],
    )
