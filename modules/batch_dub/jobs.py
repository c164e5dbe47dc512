"""The videos of a batch: from a folder (NAME.<video> + NAME.<speech> -> OUT/NAME.mp4) or a CSV
(video,audio,output[,adapter,reference]). Input the batch cannot run at all is refused with an UnAvgLipError
(a CSV without its columns, a folder without videos, two rows writing one output, an output that is an input);
a row whose files are missing becomes a failure row (`Job.problem`) and the others go on.
"""

import csv
import os
from dataclasses import dataclass, field

from ..errors import UnAvgLipError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
SPEECH_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a")
COLUMNS = ("video", "audio", "output")
OPTIONAL_COLUMNS = ("adapter", "reference")
CSV_EXAMPLE = "video,audio,output,adapter,reference\nclips/a.mp4,speech/a.wav,dubbed/a.mp4,,\n"


@dataclass
class Job:
    index: int  # its place in the input: the summary keeps this order
    label: str  # how messages name it: the file name, or "row N" of the CSV
    video: str  # absolute paths (workers may run elsewhere: a Ray node with the same shared folders)
    audio: str
    output: str
    adapter: str | None = None  # replaces --adapter for this video
    reference: list[str] = field(default_factory=list)  # replace --reference (and --identity-file) for this video
    problem: str | None = None  # why it cannot run (a missing file): reported as failed, never dubbed


def list_jobs(source: str, out_dir: str | None, audio_dir: str | None = None) -> list[Job]:
    if not os.path.exists(source):
        raise UnAvgLipError(f"{source} does not exist. Give a folder of videos and their speech files, or a CSV "
                            f"file with the columns video,audio,output.")
    if os.path.isdir(source):
        if not out_dir:
            raise UnAvgLipError(f"Give --out DIR: the folder the dubs of the videos in {source} go to (as "
                                "DIR/NAME.mp4).")
        jobs = jobs_from_folder(source, out_dir, audio_dir)
    else:
        if audio_dir:
            raise UnAvgLipError("--audio-dir goes with a folder of videos; a CSV names each row's audio itself.")
        jobs = jobs_from_csv(source)
    check_outputs(jobs)
    return jobs


def jobs_from_folder(folder: str, out_dir: str, audio_dir: str | None) -> list[Job]:
    folder, out_dir = os.path.abspath(folder), os.path.abspath(out_dir)
    speech_dir = os.path.abspath(audio_dir) if audio_dir else folder
    if audio_dir and not os.path.isdir(speech_dir):
        raise UnAvgLipError(f"--audio-dir {audio_dir} is not a folder.")
    videos = sorted(name for name in os.listdir(folder) if not name.startswith(".")
                    and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS
                    and os.path.isfile(os.path.join(folder, name)))
    if not videos:
        raise UnAvgLipError(f"{folder} has no videos ({', '.join(VIDEO_EXTENSIONS)}). Put each video there with "
                            f"its speech file of the same name ({', '.join(SPEECH_EXTENSIONS)}), or give a CSV.")
    speech_files = {}
    for name in os.listdir(speech_dir):
        stem, extension = os.path.splitext(name)
        if extension.lower() in SPEECH_EXTENSIONS and not name.startswith("."):
            speech_files.setdefault(stem, []).append(name)
    jobs = []
    for index, name in enumerate(videos):
        stem = os.path.splitext(name)[0]
        found = sorted(speech_files.get(stem, []))
        problem, audio = None, os.path.join(speech_dir, f"{stem}.wav")
        if not found:
            problem = (f"no speech file for {name}: put {stem}.wav (or .flac, .mp3, .m4a) in {speech_dir}")
        elif len(found) > 1:
            problem = f"several speech files for {name} in {speech_dir} ({', '.join(found)}); keep one"
        else:
            audio = os.path.join(speech_dir, found[0])
        jobs.append(Job(index, name, os.path.join(folder, name), audio, os.path.join(out_dir, f"{stem}.mp4"),
                        problem=problem))
    return jobs


def jobs_from_csv(path: str) -> list[Job]:
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UnAvgLipError(f"Cannot read {path} as a CSV file ({error}). It needs a header row and the columns "
                            f"video,audio,output, e.g.\n{CSV_EXAMPLE}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise UnAvgLipError(f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (its "
                            f"header row is {','.join(header) or 'empty'}). The first row names the columns "
                            f"video,audio,output and optionally adapter,reference, e.g.\n{CSV_EXAMPLE}")
    unknown = [name for name in header if name and name not in COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise UnAvgLipError(f"{path} has the column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}, which "
                            f"dub-batch does not know; the columns are {', '.join(COLUMNS + OPTIONAL_COLUMNS)}.")
    if len(rows) < 2:
        raise UnAvgLipError(f"{path} has a header but no rows: add one row per video, e.g.\n{CSV_EXAMPLE}")

    def absolute(value: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(value)))

    jobs = []
    for index, row in enumerate(rows[1:]):
        cells = {name: (row[column].strip() if column < len(row) else "") for column, name in enumerate(header)}
        label = f"row {index + 2}"  # the line of the file, the header being line 1
        empty = [name for name in COLUMNS if not cells.get(name)]
        job = Job(index, label, *(absolute(cells[name]) if cells.get(name) else "" for name in COLUMNS),
                  adapter=absolute(cells["adapter"]) if cells.get("adapter") else None,
                  reference=[absolute(p.strip()) for p in cells.get("reference", "").split(";") if p.strip()])
        if empty:
            job.problem = f"{label} of {path} has no {', '.join(empty)}"
        else:
            job.problem = missing_files(job)
        jobs.append(job)
    return jobs


def missing_files(job: Job) -> str | None:
    for what, value in (("video", job.video), ("audio", job.audio), ("adapter", job.adapter),
                        *(("reference photo", photo) for photo in job.reference)):
        if value and not os.path.isfile(value):
            return f"{what} not found: {value}"
    return None


def check_outputs(jobs: list[Job]) -> None:
    """Two jobs writing one file, or an output that is an input, would destroy work: refuse before any."""
    writers = {}
    for job in jobs:
        if job.output:
            writers.setdefault(os.path.realpath(job.output), []).append(job.label)
    shared = {path: labels for path, labels in writers.items() if len(labels) > 1}
    if shared:
        lines = "\n".join(f"  {path}: {', '.join(labels)}" for path, labels in shared.items())
        raise UnAvgLipError(f"Several videos would be written to the same output; give each its own:\n{lines}")
    inputs = {os.path.realpath(path) for job in jobs for path in (job.video, job.audio) if path}
    clash = sorted(path for path in writers if path in inputs)
    if clash:
        raise UnAvgLipError(f"The output {clash[0]} is also an input of the batch; it would be overwritten. Write "
                            "the dubs to another folder (--out) or under other names.")
