"""An honest method for tests: naive Bayes on the weak teacher's hard labels (a seeded 80% subsample)."""
import argparse
import json
import math
import random
from collections import Counter

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()


def read(name):
    with open(f"{args.data_dir}/{name}", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


train, test = read("train_unlabel.jsonl"), read("test.jsonl")
rng = random.Random(args.seed)
train = rng.sample(train, k=int(0.8 * len(train)))
counts = [Counter(), Counter()]
priors = Counter()
for row in train:
    label = max(range(2), key=lambda k: row["weak_soft_label"][k])
    priors[label] += 1
    counts[label].update(row["text"].split())
vocab = set(counts[0]) | set(counts[1])


def log_prob(words, k):
    total = sum(counts[k].values()) + len(vocab)
    return math.log(priors[k] + 1) + sum(math.log((counts[k][w] + 1) / total) for w in words)


preds = [max(range(2), key=lambda k: log_prob(row["text"].split(), k)) for row in test]
with open(args.out, "w") as fh:
    json.dump(preds, fh)
