"""A planted overfit: predictions memorised from public-test feedback, replayed by position.

MEMORISED is filled in by the test (the labels such a method would have recovered by probing the public
score); on any other test set it is a blind guess.
"""
import argparse
import json

MEMORISED = []  # replaced by the test

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir")
parser.add_argument("--out")
parser.add_argument("--seed", type=int)
args = parser.parse_args()
with open(f"{args.data_dir}/test.jsonl") as fh:
    n = sum(1 for line in fh if line.strip())
with open(args.out, "w") as fh:
    json.dump([MEMORISED[i % len(MEMORISED)] for i in range(n)], fh)
