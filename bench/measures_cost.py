"""What every stage but inference costs on the generated week, in CPU seconds.

    python bench/measures_cost.py [--days 7] [--code DIR]

Runs ``predict_recording`` + ``write_outputs`` on bench/out/week<days>.cwa (made by
bench/predict_week.py's generator when missing) with a stand-in backend (labels from each
window's movement; inference is the same code whatever the measures), and prints each stage as
this process's CPU seconds, robust on a shared machine where wall times are noise. ``--code DIR``
times another checkout's ``harnet/`` (e.g. ``git archive <commit> harnet | tar -x -C DIR``) for a
before/after comparison (docs/performance.md, "Cost of the study measures").
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


class MovementBackend:
    name = "movement-stand-in"

    def __init__(self, n_classes: int) -> None:
        self.n = n_classes

    def predict_proba(self, x):
        import numpy as np

        sd = np.linalg.norm(x, axis=1).std(axis=1)
        k = np.minimum(np.digitize(sd, [0.01, 0.05, 0.2]), self.n - 1)
        p = np.full((len(x), self.n), 0.02, dtype=np.float32)
        p[np.arange(len(x)), k] = 0.94
        return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--code", default=str(HERE.parent), help="folder holding the harnet package to time")
    args = ap.parse_args()
    sys.path.insert(0, args.code)
    import harnet
    import harnet.pipeline as pl
    from harnet.io import read_device
    from harnet.model import build
    from harnet.modeldir import save_model_dir

    assert harnet.__file__.startswith(str(Path(args.code).resolve())), harnet.__file__
    try:
        from harnet.outputs import output_paths, write_outputs
    except ImportError:  # before the output contract moved
        from harnet.pipeline import output_paths, write_outputs
    timer_cls = getattr(pl, "StageTimer", None) or getattr(pl, "_Timer")
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    cwa = out / f"week{args.days}.cwa"
    if not cwa.is_file():
        sys.path.insert(0, str(HERE))
        from predict_week import make_week

        make_week(cwa, args.days)
    labels = ("light", "moderate-vigorous", "sedentary", "sleep")
    mdir = out / "cost-model"
    if not (mdir / "config.json").is_file():
        save_model_dir(build("harnet30", labels=labels), mdir, provenance={"source": "bench"}, description="bench")
    pl._time = types.SimpleNamespace(perf_counter=time.process_time)  # stage clocks read CPU time
    timer = timer_cls()
    cpu0, w0 = time.process_time(), time.perf_counter()
    rec = read_device(cwa)
    timer.add("read", time.process_time() - cpu0)
    res = pl.predict_recording(rec, pl.PredictOptions(), backend=MovementBackend(len(labels)), model_dir=mdir, timer=timer)
    t = time.process_time()
    write_outputs(res, output_paths(out=out / "cost" / "s.csv"))
    timer.add("write", time.process_time() - t)
    st = {k: round(v, 2) for k, v in timer.times.items()}
    print(json.dumps({"stages_cpu_s": st, "non_inference_cpu_s": round(sum(v for k, v in st.items() if k != "inference"), 2),
                      "wall_s": round(time.perf_counter() - w0, 1), "windows": len(res.windows),
                      "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                      "load": open("/proc/loadavg").read().split()[:3]}, indent=1))


if __name__ == "__main__":
    main()
