"""Running the `unavglip` command as torchrun runs it: N processes on the CPU (gloo), through
tests/distributed_worker.py, which can make rank 1 crash or be stopped."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")


def run(args, ranks=1, fail=None, timeout=600) -> subprocess.CompletedProcess:
    """`unavglip ARGS` in 1 process, or under torchrun in `ranks` processes; fail="crash:3" / "stop:3" on rank 1."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    env.pop("FAIL", None)
    if fail:
        env["FAIL"] = fail
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"] \
        if ranks > 1 else [sys.executable]
    return subprocess.run([*launcher, WORKER, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
