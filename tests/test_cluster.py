"""What docs/distributed.md ships for clusters, checked as far as one machine allows: the SLURM
script's stop-and-continue cycle (bash, a fake `scontrol`, real training, real signals) and the
Kubernetes TFJob's TF_CONFIG against the one `looptrain launch` gives its workers."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from looptrain import launch
from looptrain.cli import train_parser

PAGE = (ROOT / "docs" / "distributed.md").read_text(encoding="utf-8")


def _block(marker: str) -> str:
    """The fenced code block of the page that holds `# <marker>`."""
    block = next(b for b in re.findall(r"```\w*\n(.*?)```", PAGE, re.S) if f"# <{marker}>" in b)
    return block


def _manifest() -> dict:
    """The few fields of the TFJob this test needs (no YAML parser is a dependency)."""
    text = _block("tfjob-manifest")
    args = re.search(r"args: (\[.*?\])", text, re.S).group(1)
    return {"name": re.search(r"^  name: (\S+)", text, re.M).group(1),
            "replicas": int(re.search(r"replicas: (\d+)", text).group(1)),
            "port": int(re.search(r"containerPort: (\d+)", text).group(1)),
            "command": json.loads(re.search(r"command: (\[.*?\])", text).group(1)),
            "args": json.loads(" ".join(args.split()))}


def _operator_tf_config(job: dict, index: int, namespace: str = "default") -> dict:
    """TF_CONFIG as Kubeflow's training operator sets it in worker `index`'s pod: one
    `NAME-worker-I.NAMESPACE.svc:PORT` per replica, the pod's own index, environment "cloud"."""
    hosts = [f"{job['name']}-worker-{i}.{namespace}.svc:{job['port']}" for i in range(job["replicas"])]
    return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index},
            "environment": "cloud"}


def test_the_tfjob_gives_each_worker_the_tf_config_looptrain_launch_gives():
    job = _manifest()
    assert job["command"] == ["python", "-m", "looptrain", "train"]  # the installed entry point
    args = train_parser().parse_args(job["args"])
    assert args.strategy == "multiworker" and args.resume == "auto"
    for index in range(job["replicas"]):
        operator = _operator_tf_config(job, index)
        local = json.loads(launch.tf_config(operator["cluster"]["worker"], index))
        # The same cluster and task; "environment" is a key TensorFlow 1's Estimators read, ignored since.
        assert {k: v for k, v in operator.items() if k != "environment"} == local


def test_tensorflow_reads_the_same_cluster_from_both():
    import tensorflow as tf

    job = _manifest()
    operator = _operator_tf_config(job, 1)
    resolvers = []
    for value in (json.dumps(operator), launch.tf_config(operator["cluster"]["worker"], 1)):
        os.environ["TF_CONFIG"] = value
        try:
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
            resolvers.append((resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id))
        finally:
            del os.environ["TF_CONFIG"]
    assert resolvers[0] == resolvers[1] and resolvers[0][1:] == ("worker", 1)


def _checkpoint_steps(run) -> list[int]:
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in (run / "checkpoints").glob("ckpt-*.index"))


@pytest.mark.slow
def test_the_slurm_script_stops_requeues_and_continues(tmp_path):
    script = tmp_path / "train.sbatch"
    script.write_text(_block("slurm-script"))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'requeued'}\n")
    (fake / "scontrol").chmod(0o755)
    run = tmp_path / "run"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "SLURM_JOB_ID": "42",
           "SLURM_JOB_NAME": "t", "LOOPTRAIN": f"{sys.executable} -m looptrain",
           "CONFIG": str(ROOT / "configs" / "tiny.toml"), "RUN_DIR": str(run), "PYTHONPATH": str(ROOT)}

    def start(time_limit: str, max_steps: int) -> subprocess.Popen:
        return subprocess.Popen(["bash", str(script), "--max-steps", str(max_steps)], cwd=tmp_path,
                                env={**env, "TIME_LIMIT": time_limit}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def requeues() -> list[str]:
        path = tmp_path / "requeued"
        return path.read_text().splitlines() if path.exists() else []

    # 1. The time limit: a checkpoint, exit 75, requeued.
    first = start("6s", 100_000)
    out = first.communicate(timeout=300)[0]
    assert "stopped with a checkpoint (exit 75); requeueing" in out, out
    assert requeues() == ["requeue 42"]
    after_limit = _checkpoint_steps(run)[-1]
    # 2. Preemption: SIGTERM to the batch script, passed on; a checkpoint, exit 143, requeued.
    second = start("1h", 100_000)
    deadline = time.monotonic() + 240
    while _checkpoint_steps(run)[-1] <= after_limit + 20:  # continued, with handlers installed
        assert second.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    second.send_signal(signal.SIGTERM)
    out = second.communicate(timeout=240)[0]
    assert "stopped with a checkpoint (exit 143); requeueing" in out, out
    assert requeues() == ["requeue 42"] * 2
    stopped = _checkpoint_steps(run)[-1]
    assert stopped > after_limit + 20
    # 3. The same command runs to its end: exit 0, not requeued.
    third = start("1h", stopped + 30)
    out = third.communicate(timeout=300)[0]
    assert third.returncode == 0 and f"run {run} finished" in out, out
    assert requeues() == ["requeue 42"] * 2
    assert _checkpoint_steps(run)[-1] == stopped + 30
