"""dub-batch's workers as Ray actors: `--ray-address auto` (the cluster `ray start` made), `ray://HOST:PORT`, or
`local` (Ray started here with --workers CPUs). Each actor is a DubWorker (the models loaded once in it) asking
for one GPU when the cluster has GPUs, else one CPU; the videos are fed through `ray.util.ActorPool`, never more
than there are actors, so each submitted video is being dubbed. An actor that dies fails its own video and is
replaced. Paths must be absolute and the folders shared by every node of a cluster.

Ray is imported only here, inside `run_on_ray`.
"""

from collections import deque

from ..errors import UnAvgLipError
from .worker import FAILED, DubWorker

RAY_MISSING = ('--ray-address needs Ray, which is not installed: pip install "comfyui-unavglip[ray]" (or pip install '
               'ray), then `ray start --head` on the first machine and `ray start --address HEAD:6379` on the others.')
DIED = "its Ray worker died while dubbing it (killed, e.g. for lack of memory, or its node was lost)"


def run_on_ray(jobs: list[dict], options: dict, address: str, workers: int, on_result, log=print,
               worker_class=DubWorker) -> None:
    """Each actor is a `worker_class(options, device, threads)` (a DubWorker; the tests give one that dies)."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise UnAvgLipError(RAY_MISSING) from None

    if address == "local":
        ray.init(num_cpus=workers, include_dashboard=False)
    else:
        ray.init(address=address)
    try:
        gpus = 0 if options["cpu"] else int(ray.cluster_resources().get("GPU", 0))
        count = min(gpus or workers, len(jobs))
        resources, device = ({"num_gpus": 1}, "cuda") if gpus else ({"num_cpus": 1}, "cpu")
        log(f"dub-batch: {count} Ray actor{'s' if count > 1 else ''}, each on one {'GPU' if gpus else 'CPU'}")
        actor_class = ray.remote(**resources)(worker_class)

        def start():  # one CPU each: one torch thread, as Ray's OMP_NUM_THREADS says
            return actor_class.remote(options, device, None if gpus else 1)

        pool = ActorPool([start() for _ in range(count)])
        queue, running = deque(jobs), {}  # actor id -> the job it is dubbing

        def call(actor, job):
            running[actor._actor_id.hex()] = job
            return actor.run.remote(job)

        while queue or pool.has_next():
            while queue and pool.has_free():
                pool.submit(call, queue.popleft())
            try:
                result = pool.get_next_unordered()
            except ray.exceptions.RayActorError as error:
                dead = getattr(error, "actor_id", None)
                job = running.pop(dead, None)
                if job is not None:
                    on_result({"index": job["index"], "status": FAILED, "frames": 0, "seconds": 0.0,
                               "reason": f"{DIED}: {error}".splitlines()[0], "notes": []})
                idle = []
                while pool.has_free():  # keep the dead actor out (older Ray returns it to the idle set)
                    idle.append(pool.pop_idle())
                for actor in idle:
                    if actor._actor_id.hex() != dead:
                        pool.push(actor)
                if queue:
                    pool.push(start())
                continue
            for key, job in list(running.items()):
                if job["index"] == result["index"]:
                    del running[key]
            on_result(result)
    finally:
        ray.shutdown()
