"""What `--steps` costs on the week benchmark: `harnet predict` on the generated 7-day, 100 Hz
Axivity file of bench/predict_week.py, once without and once with `--steps-model`, in one run.

    python bench/steps_week.py                        # a walking detector made here (harnet10, random
                                                      # weights: its inference costs what the real one does)
    python bench/steps_week.py --steps-model DIR      # a converted stepcount bundle or a trained detector
    python bench/steps_week.py --cwa PATH             # an existing week file instead of generating one

Target (issue 16): the run with steps takes at most the walking detector's inference time
(info.json StageSeconds.steps_inference) plus 3 s longer than the run without. The activity
model's own inference varies between two runs on a loaded machine, so the difference is also
given without it (every stage but the activity inference and the detector's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))


def walking_model(d: Path, all_walking: bool = False) -> Path:
    """A harnet10 walking detector (labels not-walking, walking), with an HMM and step parameters.
    ``all_walking``: its head says walking for every window (the most step counting there can be)."""
    if (d / "config.json").is_file():
        return d
    import numpy as np
    import torch

    from harnet.hmm import HMM
    from harnet.model import build
    from harnet.modeldir import save_model_dir

    torch.manual_seed(1)
    m = build("harnet10", labels=("not-walking", "walking")).eval()
    if all_walking:
        with torch.no_grad():
            m.classifier.linear2.weight.zero_()
            m.classifier.linear2.bias.copy_(torch.tensor([0.0, 10.0]))
    save_model_dir(m, d, provenance={"source": "bench", "licence": "BSD-3-Clause"}, description="bench walking detector")
    HMM(prior=np.array([0.5, 0.5]), emission=np.array([[0.9, 0.1], [0.2, 0.8]]),
        transition=np.array([[0.95, 0.05], [0.1, 0.9]]), labels=("not-walking", "walking")).save(d / "hmm.json")
    cfg = json.loads((d / "config.json").read_text())
    cfg["steps"] = {"steptol": 4, "lowpass_hz": 5.0, "peak_distance_s": 0.4, "peak_prominence_g": 0.2,
                    "source": "bench (harnet defaults)"}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def run(cmd: list[str], out: Path) -> tuple[float, dict]:
    print("$", " ".join(cmd), flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    return wall, json.loads(out.with_name(out.stem + "-info.json").read_text())


def main() -> None:
    from predict_week import make_week

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="harnet30-c24-walmsley")
    ap.add_argument("--steps-model", default=None, help="walking detector (default: one made in bench/out/walk-model)")
    ap.add_argument("--cwa", default=None, help="an existing week file (default: bench/out/week7.cwa, generated once)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--all-walking", action="store_true",
                    help="the made detector says walking for every window: steps are counted in every window")
    ap.add_argument("--only-with", action="store_true", help="run only with steps (the stage table, no difference)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    cwa = Path(args.cwa) if args.cwa else make_week(OUT / "week7.cwa", 7)
    walk = args.steps_model or str(walking_model(OUT / ("walk-model-all" if args.all_walking else "walk-model"),
                                                 args.all_walking))
    base = ["harnet", "predict", str(cwa), "--model", args.model, "--backend", args.backend, "-q"]
    if args.threads:
        base += ["--threads", str(args.threads)]
    o1, o2 = OUT / "steps-off.csv", OUT / "steps-on.csv"
    w2, i2 = run(base + ["--out", str(o2), "--steps-model", walk], o2)
    if args.only_with:
        print(json.dumps(i2["StageSeconds"]), f"\nend to end {w2:.1f} s; steps {i2['TotalSteps']:.0f} in "
              f"{i2['TotalWalking(min)']:.0f} walking min; 'steps' stage {i2['StageSeconds']['steps']:.1f} s (target <= 3 s)")
        return
    w1, i1 = run(base + ["--out", str(o1)], o1)
    s1, s2 = i1["StageSeconds"], i2["StageSeconds"]
    print(f"\n{'stage':<16}{'without':>10}{'with':>10}")
    for k in sorted(set(s1) | set(s2), key=lambda k: list(s2).index(k) if k in s2 else 99):
        print(f"{k:<16}{s1.get(k, 0.0):>10.1f}{s2.get(k, 0.0):>10.1f}")
    det = s2.get("steps_inference", 0.0)
    delta = w2 - w1
    rest1 = sum(v for k, v in s1.items() if k != "inference")
    rest2 = sum(v for k, v in s2.items() if k not in ("inference", "steps_inference"))
    print(f"\nend to end: without {w1:.1f} s, with {w2:.1f} s: +{delta:.1f} s; detector inference {det:.1f} s "
          f"-> {delta - det:+.1f} s beyond it (target <= +3 s)")
    print(f"stages without either inference: {rest1:.1f} s vs {rest2:.1f} s: {rest2 - rest1:+.1f} s (target <= +3 s)")
    print(f"steps: {i2['TotalSteps']:.0f} in {i2['TotalWalking(min)']:.0f} walking min; "
          f"{i2['HasDataWindows'] * 3:,} detector windows")


if __name__ == "__main__":
    main()
