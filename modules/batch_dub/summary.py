"""dub-batch's summary: one CSV row per video, in the input's order (video, audio, output, status done | skipped |
failed, frames written, seconds it took, the reason it failed), written under a temporary name and renamed."""

import csv
import os

FIELDS = ("video", "audio", "output", "status", "frames", "seconds", "reason")


def write_summary(path: str, rows: list[dict]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f".{os.path.basename(path)}.partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "frames": row.get("frames") or "",
                             "seconds": f"{row['seconds']:.2f}" if row.get("seconds") else "",
                             "reason": " ".join(str(row.get("reason") or "").split())})  # one line per row
    os.replace(partial, path)


def read_summary(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def counts(rows: list[dict]) -> dict:
    totals = {"done": 0, "skipped": 0, "failed": 0}
    for row in rows:
        totals[row["status"]] += 1
    return totals
