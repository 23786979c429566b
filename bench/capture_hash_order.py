"""How much CAPTURE's reference code (Dong et al., 2024) moves with PYTHONHASHSEED, measured on THumB 1.0.

The reference keeps a caption's objects, attribute words and relations in Python sets and matches them greedily
in set order, so its scores change with the hash seed. capeval matches in order of first appearance. This
script parses THumB captions once (offline spaCy parser), embeds every phrase once (MiniLM, offline), then in
one subprocess per hash seed rebuilds each graph in the reference's set order and scores it with capeval's
matching. It prints the largest change of a captioner's corpus score across seeds, how many (captioner, image)
scores change for at least one seed, and the largest such change.

    python bench/capture_hash_order.py [--limit N_IMAGES] [--seeds N] [--thumb DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from thumb_data import THUMB, load_thumb

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def reference_ordered(sentences, stop_words):
    """The graph the reference builds (``merge_sentence_results`` + its noun filter), in its set order."""
    from capeval.capture.graph import CaptureGraph
    from capeval.capture.wordnet import lemmatize

    objects, attributes, relations, nouns = set(), {}, set(), set()
    for sent in sentences:
        nouns.update(lemmatize(t, "n") for t in sent.nouns)
        for head in sent.entities:
            objects.add(lemmatize(head, "n"))
        for head, attribute in sent.attributes:
            obj = lemmatize(head, "n")
            objects.add(obj)
            attribute = lemmatize(attribute, "a")
            if " of" not in attribute:
                attributes.setdefault(obj, set()).add(attribute)
        for subj, pred, obj in sent.relations:
            s, o = lemmatize(subj, "n"), lemmatize(obj, "n")
            objects.update((s, o))
            relations.add((s, pred, o))

    def passes(x):
        return x in nouns or all(p in nouns for p in x.split(" "))

    objs = [o for o in objects if o not in stop_words and passes(o)]
    attrs = {k: v for k, v in attributes.items() if passes(k)}
    rels = set([r for r in relations if passes(r[0]) and passes(r[2])])  # noqa: C403 - as the reference
    return CaptureGraph(objects=tuple(objs), attributes=tuple((k, a) for k, v in attrs.items() for a in v),
                        relations=tuple(rels))


def child(data_path: str) -> None:
    """Score every sample with the reference's set order of this process's hash seed; print JSON."""
    from capeval.capture.scoring import score_samples
    from capeval.capture.stopwords import STOP_WORDS

    with open(data_path, "rb") as f:
        data = pickle.load(f)
    vectors = data["vectors"]

    def embed(phrases):
        return {p: vectors[p] for p in phrases}

    out = {}
    for name, (cand_sents, ref_sents) in data["systems"].items():
        cands = [reference_ordered(s, STOP_WORDS) for s in cand_sents]
        refs = [[reference_ordered(r, STOP_WORDS) for r in rs] for rs in ref_sents]
        out[name] = score_samples(cands, refs, embed)[:, 0].tolist()
    print(json.dumps(out))


def main() -> None:
    """Parse, embed, score under each hash seed, print the effect."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="first N images (default 100)")
    parser.add_argument("--seeds", type=int, default=10, help="hash seeds 0..N-1 (default 10)")
    parser.add_argument("--thumb", type=Path, default=THUMB, help="THumB folder (default ../shared/data/thumb)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.child:
        child(args.child)
        return

    from capeval.capture.encoders import load_encoder
    from capeval.capture.graph import merge_sentences
    from capeval.capture.parsing import SpacyParser, split_sentences
    from capeval.capture.scoring import score_samples

    refs, systems = load_thumb(args.limit, args.thumb)
    ids = list(refs)
    parser_ = SpacyParser()
    texts = {c for caps in systems.values() for c in caps.values()} | {r for rs in refs.values() for r in rs}
    split = {t: split_sentences(t) for t in texts}
    sentences = list(dict.fromkeys(s for ss in split.values() for s in ss))
    graphs = dict(zip(sentences, parser_.parse(sentences), strict=True))

    def sents(text):
        return [graphs[s] for s in split[text]]

    data = {"systems": {}, "vectors": {}}
    ours = {}
    phrases: set[str] = set()
    for name, caps in sorted(systems.items()):
        cand_sents = [sents(caps[i]) for i in ids]
        ref_sents = [[sents(r) for r in refs[i]] for i in ids]
        data["systems"][name] = (cand_sents, ref_sents)
        for g in [merge_sentences(s) for s in cand_sents] + [merge_sentences(r) for rs in ref_sents for r in rs]:
            phrases |= g.phrases()
    _, encoder = load_encoder("minilm")
    data["vectors"] = {p: np.asarray(v) for p, v in encoder(sorted(phrases)).items()}
    for name, (cand_sents, ref_sents) in data["systems"].items():
        cands = [merge_sentences(s) for s in cand_sents]
        rgs = [[merge_sentences(r) for r in rs] for rs in ref_sents]
        ours[name] = score_samples(cands, rgs, lambda ps: {p: data["vectors"][p] for p in ps})[:, 0]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.pkl"
        path.write_bytes(pickle.dumps(data))
        runs = []
        for seed in range(args.seeds):
            env = {**os.environ, "PYTHONHASHSEED": str(seed)}
            proc = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True,
                                  text=True, env=env, check=True)
            runs.append({k: np.asarray(v) for k, v in json.loads(proc.stdout).items()})

    print(f"THumB: {len(ids)} images x {len(systems)} captioners, hash seeds 0..{args.seeds - 1}")
    changed = 0
    largest = 0.0
    for name in sorted(systems):
        per_seed = np.stack([r[name] for r in runs])  # seeds x images
        corpus = per_seed.mean(axis=1)
        spread = per_seed.max(axis=0) - per_seed.min(axis=0)
        changed += int((spread > 1e-12).sum())
        largest = max(largest, float(spread.max()))
        print(f"  {name:<14} reference corpus {corpus.min():.5f}..{corpus.max():.5f} "
              f"(spread {corpus.max() - corpus.min():.5f}); capeval (first appearance) {ours[name].mean():.5f}")
    print(f"  (captioner, image) scores that change with the seed: {changed} of {len(ids) * len(systems)}; "
          f"largest change {largest:.4f}")


if __name__ == "__main__":
    main()
