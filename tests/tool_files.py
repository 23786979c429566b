"""Writers of lmms-eval, VLMEvalKit and Hugging Face files in those tools' documented layouts (test fixtures)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

LMMS_METRICS = ["Bleu_4", "Bleu_3", "Bleu_2", "Bleu_1", "METEOR", "ROUGE_L", "CIDEr"]


def write_lmms_samples(folder: Path, refs: dict[str, list[str]], captions: dict[str, str], *,
                       task: str = "coco2014_cap_val", date: str = "20250101_120000", nested: bool = False,
                       results: dict[str, float] | None = None, prefix: str = "coco") -> Path:
    """``<folder>/<date>_samples_<task>.jsonl`` as lmms-eval's EvaluationTracker writes it (ids become ints).

    ``nested=True`` writes the older shapes (``resps: [["..."]]``, ``filtered_resps: ["..."]``).
    ``results`` also writes ``<date>_results.json`` with those scores (lmms-eval's names, e.g. ``coco_CIDEr``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{date}_samples_{task}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for doc_id, (sid, text) in enumerate(captions.items()):
            image_id = int(sid)
            entry = {"answer": refs[sid], "pred": text, "image_id": image_id, "id": doc_id}
            rec = {
                "doc_id": doc_id,
                "target": str(refs[sid]),
                "filtered_resps": [text] if nested else text,
                "token_counts": [None],
                "doc_hash": hashlib.sha256(sid.encode()).hexdigest(),
                "input": "Provide a one-sentence caption for the provided image.",
            }
            if nested:
                rec["resps"] = [[text]]
            rec.update({f"{prefix}_{m}": entry for m in LMMS_METRICS})
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if results is not None:
        doc = {"results": {task: {"alias": task, **{f"{k},none": v for k, v in results.items()},
                                  **{f"{k}_stderr,none": "N/A" for k in results}}},
               "configs": {task: {"task": task}}, "versions": {task: "Yaml"}}
        (folder / f"{date}_results.json").write_text(json.dumps(doc, indent=2))
    return path


def vlmeval_frame(refs: dict[str, list[str]], captions: dict[str, str]) -> pd.DataFrame:
    """A VLMEvalKit COCO_VAL prediction table: index, question, answer (str of the list), prediction."""
    question = ("Please describe this image in general. Directly provide the description, "
                'do not include prefix like "This image depicts". ')
    return pd.DataFrame({
        "index": [int(s) for s in captions],
        "question": [question] * len(captions),
        "answer": [str(refs[s]) for s in captions],
        "prediction": list(captions.values()),
    })


def write_vlmeval(path: Path, refs: dict[str, list[str]], captions: dict[str, str],
                  scores: dict | None = None) -> Path:
    """``<model>_<dataset>.xlsx|.tsv|.json`` as VLMEvalKit dumps it, and ``*_score.json`` when ``scores``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = vlmeval_frame(refs, captions)
    if path.suffix == ".xlsx":
        frame.to_excel(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False, quoting=1)
    else:
        path.write_text(json.dumps(frame.to_dict("records"), indent=4, ensure_ascii=False))
    if scores is not None:
        path.with_name(f"{path.stem}_score.json").write_text(json.dumps(scores, indent=4))
    return path


EXAMPLE_IDS = ("974", "2453", "2690", "5123", "9002")


def write_examples(folder: Path, refs: dict[str, list[str]], captions: dict[str, str],
                   lmms_scores: dict[str, float], vlmeval_scores: dict) -> None:
    """The real-shaped examples kept in datasets/tool-outputs/ (5 THumB images, VinVL-large's captions)."""
    refs = {s: refs[s] for s in EXAMPLE_IDS}
    captions = {s: captions[s] for s in EXAMPLE_IDS}
    write_lmms_samples(folder / "lmms-eval" / "VinVL-large", refs, captions, results=lmms_scores)
    write_vlmeval(folder / "vlmeval" / "VinVL-large_COCO_VAL.xlsx", refs, captions, scores=vlmeval_scores)
    pd.DataFrame({"image_id": [int(s) for s in captions], "caption": list(captions.values())}).to_parquet(
        folder / "hf" / "VinVL-large.parquet", index=False)
    pd.DataFrame({"image_id": [int(s) for s in refs], "references": list(refs.values())}).to_parquet(
        folder / "hf" / "references.parquet", index=False)
