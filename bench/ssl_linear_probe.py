"""Linear probe on HAPT: does a self-supervised backbone give better frozen features than the
same network with random weights?

For each backbone, the 1024 features of every labelled HAPT window (harnet10, 10 s, 30 Hz,
eval mode) feed a standardised multinomial logistic regression (L2, C=1, classes weighted by
inverse frequency) trained on the training participants of each of 5 participant-grouped folds
(the folds of ``harnet evaluate`` with the same seed). Macro F1, Cohen's kappa and balanced
accuracy are computed per test participant and reported as mean +- SD, as in the paper.

    OMP_NUM_THREADS=2 nice -n 10 python bench/ssl_linear_probe.py \
        --backbone ssl=/work/artifacts/ssl-backbone --backbone random=harnet10:random
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HAPT = ROOT.parent / "shared" / "data" / "labelled" / "hapt_uci_raw_50hz.parquet"


def load_backbone(spec: str, seed: int):
    """``DIR`` (a model directory) or ``ARCH:random`` (random weights drawn from ``seed``)."""
    import torch

    from harnet.model import build
    from harnet.modeldir import load_model_dir

    if spec.endswith(":random"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build(spec.split(":")[0]).eval()
    return load_model_dir(spec).eval()


def features(model, X: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for a in range(0, len(X), batch):
            out.append(model.features(torch.from_numpy(np.ascontiguousarray(X[a : a + batch]))).numpy())
    return np.concatenate(out)


def probe(F: np.ndarray, y: np.ndarray, pid: np.ndarray, folds: list[np.ndarray], C: float = 1.0) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from harnet.train.evaluate import subject_metrics, summarise

    per_subject: dict[str, dict[str, float]] = {}
    for test_pids in folds:
        test = np.isin(pid, test_pids)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, class_weight="balanced"))
        clf.fit(F[~test], y[~test])
        pred = clf.predict(F[test])
        for p in np.unique(pid[test]):
            m = pid[test] == p
            per_subject[str(p)] = subject_metrics(y[test][m], pred[m])
    return {"summary": summarise(per_subject), "per_subject": per_subject}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", action="append", required=True, help="NAME=DIR or NAME=ARCH:random")
    ap.add_argument("--data", default=None, help="window file from `harnet prepare` (default: HAPT prepared here)")
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the full results here")
    a = ap.parse_args()

    import torch

    from harnet.train.evaluate import subject_folds
    from harnet.train.datasets import prepare_hapt
    from harnet.train.prepare import WindowSet

    torch.set_num_threads(a.threads)
    ws = WindowSet.load(a.data) if a.data else prepare_hapt(HAPT)
    y = ws.label_index(ws.labels)
    folds = subject_folds(ws.pid, a.cv, a.seed)
    print(f"{len(ws)} windows, {len(np.unique(ws.pid))} participants, classes {list(ws.labels)}")
    report = {}
    for item in a.backbone:
        name, spec = item.split("=", 1)
        t0 = time.perf_counter()
        F = features(load_backbone(spec, a.seed), ws.X)
        t1 = time.perf_counter()
        r = probe(F, y, ws.pid, folds, a.C)
        s = r["summary"]
        print(f"{name:>10}: " + "  ".join(f"{k} {v['mean']:.3f} +- {v['sd']:.3f}" for k, v in s.items())
              + f"  (features {t1 - t0:.0f} s, probe {time.perf_counter() - t1:.0f} s)", flush=True)
        report[name] = {"spec": spec, **r}
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
