"""A method that writes predictions that are not label indices."""
import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir")
parser.add_argument("--out")
parser.add_argument("--seed", type=int)
args = parser.parse_args()
with open(args.out, "w") as fh:
    json.dump(["positive", "negative", "maybe"], fh)
