"""The same batch on a real Dask cluster (LocalCluster, 2 worker processes) and via jobqueue settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_batch import make_cohort, opts_for, output_bytes, read_failures, tiny_model  # noqa: F401  (fixture)

from harnet import batch

distributed = pytest.importorskip("distributed")


@pytest.mark.slow
def test_local_cluster_matches_local_mode(tmp_path, tiny_model):  # noqa: F811
    import pandas as pd

    import harnet
    from harnet.collate import collate
    from harnet_cli.main import main

    files = make_cohort(tmp_path / "data", 3, minutes=8)
    bad = tmp_path / "data" / "P09.gt3x"
    bad.write_bytes(b"not a zip")
    inputs = [*files, bad]
    local = batch.process_batch(inputs, tmp_path / "local", opts_for(tiny_model, threads=1), workers=2)
    assert sorted(local.processed) == ["P00", "P01", "P02"] and [f.name for f in local.failures] == ["P09"]

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        code = main(["predict", *map(str, inputs), "--outdir", str(tmp_path / "dask"), "--model", str(tiny_model),
                     "--backend", "onnx", "--threads", "1", "--scheduler", cluster.scheduler_address, "-q"])
        assert code == 1  # the .gt3x failed, on the cluster as locally
        with distributed.Client(cluster) as client:
            ran_on = client.run(lambda: __import__("os").getpid())
            # the Python API on the same folder: everything is done already, the tables come back
            cohort = harnet.predict_many(inputs, tmp_path / "dask", client=client, model=str(tiny_model),
                                         backend="onnx", threads=1, progress=False)

    assert output_bytes(tmp_path / "dask") == output_bytes(tmp_path / "local")
    assert len(output_bytes(tmp_path / "local")) == 9
    assert read_failures(tmp_path / "dask")[0]["reason"] == read_failures(tmp_path / "local")[0]["reason"]
    import json

    pids = {json.loads((tmp_path / "dask" / n / "run.json").read_text())["pid"] for n in ("P00", "P01", "P02")}
    assert pids <= set(ran_on.values())  # the recordings really ran in the cluster's worker processes
    ref = collate(tmp_path / "local")
    pd.testing.assert_frame_equal(cohort.days, ref.days)
    pd.testing.assert_frame_equal(cohort.participants, ref.participants)
    assert cohort.participants.set_index("Participant").loc["P09", "Status"] == "failed"


@pytest.mark.parametrize("kind", ["slurm", "pbs", "sge"])
def test_jobqueue_job_scripts(kind):
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    job = batch.JobOptions(jobs=3, cores=8, memory="32GB", walltime="02:30:00", queue="short", account="proj7",
                           extra=("--qos=long",) if kind == "slurm" else ("-l scratch=10G",),
                           prologue=("module load python/3.11",))
    name, kw = batch.jobqueue_kwargs(kind, job)
    cluster = getattr(dask_jobqueue, name)(**kw, scheduler_options={"host": "127.0.0.1", "dashboard_address": None})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "--nthreads 8" in script and "module load python/3.11" in script
    assert "export HF_HUB_OFFLINE=1" in script  # compute nodes never download
    assert "short" in script and "proj7" in script and "02:30:00" in script
    assert ("--qos=long" if kind == "slurm" else "-l scratch=10G") in script
    if kind == "slurm":
        assert "--cpus-per-task=8" in script and "--mem=30G" in script
    if kind == "pbs":
        assert "ncpus=8" in script
    with pytest.raises(batch.InputError):
        batch.jobqueue_kwargs("lsf", job)


def test_unreachable_scheduler_is_one_line_error(tmp_path, tiny_model, capsys, monkeypatch):  # noqa: F811
    import socket

    from harnet.batch import dask as batch_dask

    monkeypatch.setattr(batch_dask, "SCHEDULER_TIMEOUT", "2s")

    from harnet_cli.main import main

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    files = make_cohort(tmp_path / "data", 1, minutes=1)
    code = main(["predict", str(files[0]), "--outdir", str(tmp_path / "o"), "--model", str(tiny_model),
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and len(err.strip().splitlines()) == 1
