#!/usr/bin/env python3
"""Check a run directory's TensorBoard event files with TensorBoard's own reader.

Loads every events.out.tfevents.* file in DIR with the `tensorboard` package's
EventAccumulator (which checks each record's CRC and applies restart markers, as the
TensorBoard UI does) and asserts how many steps each given tag has:

    python3 tools/check_tensorboard.py RUN_DIR --expect loss/train:20 \
        --expect-histogram weights/w:4

Scalars must be finite-or-NaN floats at distinct, increasing steps; histograms must have
as many counts as values. Exits 1 with a message naming the tag on any mismatch, and 2
if DIR has no event file.
"""

import argparse
import glob
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator


def tag_count(text):
    tag, sep, count = text.rpartition(":")
    if not sep or not tag or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected TAG:STEPS, got {text!r}")
    return tag, int(count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="run directory holding events.out.tfevents.* files")
    parser.add_argument("--expect", type=tag_count, action="append", default=[],
                        metavar="TAG:STEPS", help="scalar tag and its number of steps")
    parser.add_argument("--expect-histogram", type=tag_count, action="append", default=[],
                        metavar="TAG:STEPS", help="histogram tag and its number of steps")
    args = parser.parse_args()

    files = glob.glob(os.path.join(args.dir, "events.out.tfevents.*"))
    if not files:
        print(f"check_tensorboard: no events.out.tfevents.* file in {args.dir}", file=sys.stderr)
        return 2

    keep_all = {kind: 0 for kind in event_accumulator.DEFAULT_SIZE_GUIDANCE}
    accumulator = event_accumulator.EventAccumulator(args.dir, size_guidance=keep_all)
    accumulator.Reload()
    tags = accumulator.Tags()
    problems = []

    for tag, expected in args.expect:
        if tag not in tags["scalars"]:
            problems.append(f"scalar '{tag}' is missing (scalar tags: {sorted(tags['scalars'])})")
            continue
        events = accumulator.Scalars(tag)
        steps = [e.step for e in events]
        if len(steps) != expected:
            problems.append(f"scalar '{tag}' has {len(steps)} steps, expected {expected}: {steps}")
        if any(a >= b for a, b in zip(steps, steps[1:])):
            problems.append(f"scalar '{tag}' steps are not increasing: {steps}")
        if any(math.isinf(e.value) for e in events):
            problems.append(f"scalar '{tag}' has an infinite value")

    for tag, expected in args.expect_histogram:
        if tag not in tags["histograms"]:
            problems.append(f"histogram '{tag}' is missing (histogram tags: {sorted(tags['histograms'])})")
            continue
        events = accumulator.Histograms(tag)
        if len(events) != expected:
            problems.append(f"histogram '{tag}' has {len(events)} steps, expected {expected}: "
                            f"{[e.step for e in events]}")
        for event in events:
            histo = event.histogram_value
            if histo.num <= 0 or sum(histo.bucket) != histo.num:
                problems.append(f"histogram '{tag}' at step {event.step}: bucket counts "
                                f"{sum(histo.bucket)} do not add up to num {histo.num}")
            if len(histo.bucket) != len(histo.bucket_limit) or not histo.min <= histo.max:
                problems.append(f"histogram '{tag}' at step {event.step} is malformed: {histo}")

    for problem in problems:
        print(f"check_tensorboard: {args.dir}: {problem}", file=sys.stderr)
    if problems:
        return 1
    counts = ", ".join(f"{tag}: {n}" for tag, n in args.expect + args.expect_histogram)
    print(f"check_tensorboard: {len(files)} event file(s) in {args.dir} OK ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
