"""`unavglip dub-batch`: its command line. The run itself is batch_dub/batch_run.py (a layer above `commands`;
cli.py joins the two), so importing the command line costs nothing (Ray is imported only when asked for).
"""

from .dub_options import add_dub_options

BATCH_HELP = """Dub many videos with the same options. INPUT is a folder or a CSV file.

Folder: every NAME.mp4 / .mov / .mkv / .avi / .webm / .m4v in it (not its subfolders) is dubbed with the speech
file of the same name, NAME.wav / .flac / .mp3 / .m4a, from the same folder or --audio-dir, into --out DIR/NAME.mp4.

CSV: a header row naming the columns video,audio,output and optionally adapter,reference (a row's adapter and
reference photos replace --adapter / --reference; several photos separated by ';'). Relative paths are relative
to the CSV's folder.

A rerun skips the outputs that exist (each is written under a temporary name and renamed only when complete) and
redoes the rest; --overwrite redoes all. A video that fails is reported and the others go on. At the end a summary
CSV (video,audio,output,status,frames,seconds,reason) is written; the exit status is 1 if any video failed."""


def add_batch_command(commands) -> None:
    import argparse

    batch = commands.add_parser("dub-batch", help="dub many videos (a folder or a CSV) with the models loaded once "
                                "per worker; on several processes, GPUs or a Ray cluster",
                                description=BATCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    batch.add_argument("input", help="a folder of videos and their speech files, or a CSV of video,audio,output"
                                     "[,adapter,reference]")
    batch.add_argument("--out", help="the folder the dubs go to (required for a folder; with a CSV the default "
                                     "place of the summary, else the CSV's folder)")
    batch.add_argument("--audio-dir", help="folder input: take NAME's speech from here instead of beside the video")
    batch.add_argument("--workers", type=int, default=None,
                       help="on the CPU: worker processes, each loading the models once and using cores / N "
                            "threads (default 1: dubs in this process); with CUDA: one worker per visible GPU; "
                            "with Ray on a cluster without GPUs: how many actors")
    batch.add_argument("--ray-address", help="run the workers as Ray actors: auto (the cluster of `ray start`), "
                                             "ray://HOST:PORT, or local (start Ray here with --workers CPUs); "
                                             "needs `pip install ray`")
    batch.add_argument("--overwrite", action="store_true", help="dub again the videos whose output exists")
    batch.add_argument("--summary", help="the summary CSV to write (default: OUT/dub_batch_summary.csv)")
    add_dub_options(batch)
