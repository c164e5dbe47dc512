"""`unavglip dub-batch`: many videos dubbed with the same options, the models loaded once per worker.

jobs.py lists the videos (a folder or a CSV) and refuses bad input; worker.py dubs one video after another with
the base models loaded once (as `unavglip dub` would, via commands/dub_models.py); local_pool.py runs workers in
this process or in processes of this machine (one per GPU, or --workers on the CPU); ray_pool.py runs them as Ray
actors; progress.py is the frame count and the bar; summary.py the CSV at the end; batch_run.py the command.

It may import every folder below it, `commands` included (the loaders and options `dub` uses); only `cli` sits
above it. Ray is imported only inside ray_pool.run_on_ray.
"""
