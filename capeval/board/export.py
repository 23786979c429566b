"""Board exports: the JSON document, a CSV table (one row per submission and metric), and Every Eval Ever
records (evaleval/every_eval_ever ``eval.schema.json`` 0.2.1: one record per submission, one evaluation result per
metric with its configuration, bootstrap uncertainty, judge settings and, when the run's manifest records it,
the generation configuration)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from capeval import __version__
from capeval.signature import parse_signature

EEE_SCHEMA_VERSION = "0.2.1"
CSV_COLUMNS = ["track", "name", "version", "metric", "value", "ci_low", "ci_high", "se", "n", "tier", "rank_range",
               "mean_length", "cost_usd", "added", "capeval_version", "signature", "note"]
# Known score ranges (pycocoevalcap and capeval's metric cards); others are left without min/max.
RANGES = {"bleu_1": (0, 1), "bleu_2": (0, 1), "bleu_3": (0, 1), "bleu_4": (0, 1), "meteor": (0, 1),
          "rouge_l": (0, 1), "spice": (0, 1), "cider": (0, 10)}
GENERATION_ARGS = ("temperature", "top_p", "top_k", "max_tokens", "execution_command", "reasoning", "prompt_template")


def to_csv(doc: dict[str, Any]) -> str:
    """The leaderboards as CSV text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for track in doc["tracks"]:
        for sub in track["submissions"]:
            for metric, m in sub["metrics"].items():
                writer.writerow({
                    "track": track["name"], "name": sub["name"], "version": sub["version"], "metric": metric,
                    "value": m["value"], "ci_low": m["ci_low"], "ci_high": m["ci_high"], "se": m["se"], "n": m["n"],
                    "tier": m["rank"], "rank_range": "-".join(map(str, m["rank_range"] or [])),
                    "mean_length": sub["mean_length"], "cost_usd": sub["cost_usd"], "added": sub["added"],
                    "capeval_version": sub["capeval_version"], "signature": track["metrics"][metric]["signature"],
                    "note": sub["note"] or ""})
    return buf.getvalue()


def _strings(d: dict[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in d.items() if v is not None}


def _llm_scoring(signature: str, info: dict[str, Any]) -> dict[str, Any] | None:
    fields = parse_signature(signature)
    judge = fields.get("judge")
    if not judge:
        return None
    judge_cfg: dict[str, Any] = {"model_info": {"name": judge, "id": judge}}
    with contextlib.suppress(KeyError, ValueError):
        judge_cfg["temperature"] = float(fields["temp"])
    extra = {k: v for k, v in fields.items() if k not in ("metric", "judge", "temp", "prompt")}
    out: dict[str, Any] = {"judges": [judge_cfg], "input_prompt": fields.get("prompt", "unknown")}
    if extra:
        out["additional_details"] = _strings(extra)
    return out


def _generation_config(manifest: dict[str, Any]) -> dict[str, Any] | None:
    gen = manifest.get("generation")
    if not isinstance(gen, dict) or not gen:
        return None
    args = {k: gen[k] for k in GENERATION_ARGS if k in gen}
    rest = {k: v for k, v in gen.items() if k not in GENERATION_ARGS}
    out: dict[str, Any] = {}
    if args:
        out["generation_args"] = args
    if rest:
        out["additional_details"] = _strings(rest)
    return out or None


def eee_records(doc: dict[str, Any], manifests: dict[tuple[str, str], dict[str, Any]], *,
                organization: str = "unknown", relationship: str = "third_party") -> list[dict[str, Any]]:
    """One Every Eval Ever record per active submission (``manifests[(track, name)]`` = its run manifest)."""
    retrieved = str(int(time.time()))
    level = 1 - float(doc["tracks"][0]["params"].get("alpha", 0.05)) if doc["tracks"] else 0.95
    out = []
    for track in doc["tracks"]:
        n_boot = track["params"].get("n_boot")
        for sub in track["submissions"]:
            manifest = manifests.get((track["name"], sub["name"]), {})
            results = []
            for metric, m in sub["metrics"].items():
                meta = track["metrics"][metric]
                config: dict[str, Any] = {"evaluation_description": f"capeval {metric}; signature {meta['signature']}",
                                          "lower_is_better": not meta["higher_is_better"]}
                if metric in RANGES:
                    config.update(score_type="continuous", min_score=RANGES[metric][0], max_score=RANGES[metric][1])
                llm = _llm_scoring(meta["signature"], meta["info"])
                if llm:
                    config["llm_scoring"] = llm
                config["additional_details"] = _strings({"signature": meta["signature"], "method": meta["method"],
                                                         "track": track["name"]})
                if m["value"] is None:
                    continue
                uncertainty: dict[str, Any] = {"num_samples": int(m["n"] or 0)}
                if m["se"] is not None:
                    uncertainty["standard_error"] = {"value": m["se"], "method": "bootstrap"}
                if m["ci_low"] is not None and m["ci_high"] is not None:
                    uncertainty["confidence_interval"] = {"lower": m["ci_low"], "upper": m["ci_high"],
                                                          "confidence_level": level,
                                                          "method": "percentile bootstrap over images"}
                    uncertainty["num_bootstrap_samples"] = int(n_boot)
                details = _strings({"tier": m["rank"], "rank_range": m["rank_range"], "seeds": m["seeds"]})
                result: dict[str, Any] = {
                    "evaluation_name": metric,
                    "source_data": {"dataset_name": doc["title"], "source_type": "other",
                                    "additional_details": _strings({"references_sha256": track["references_sha256"],
                                                                    "samples": track["samples"]})},
                    "evaluation_timestamp": sub["added"],
                    "metric_config": config,
                    "score_details": {"score": m["value"], "uncertainty": uncertainty, "details": details},
                }
                gen = _generation_config(manifest)
                if gen:
                    result["generation_config"] = gen
                results.append(result)
            record = {
                "schema_version": EEE_SCHEMA_VERSION,
                "evaluation_id": f"{doc['title']}/{sub['name']}/{retrieved}",
                "evaluation_timestamp": manifest.get("finished") or sub["added"],
                "retrieved_timestamp": retrieved,
                "source_metadata": {"source_name": f"capeval board {doc['title']}", "source_type": "evaluation_run",
                                    "source_organization_name": organization,
                                    "evaluator_relationship": relationship,
                                    "additional_details": _strings({"track": track["name"],
                                                                    "version": sub["version"]})},
                "eval_library": {"name": "capeval", "version": sub["capeval_version"] or __version__,
                                 "additional_details": {"board_capeval_version": __version__}},
                "model_info": {"name": sub["name"], "id": sub["name"],
                               "additional_details": _strings({"captioner_in_run": sub["captioner"],
                                                               "note": sub["note"]})},
                "evaluation_results": results,
            }
            out.append(record)
    return out


def write_eee(records: list[dict[str, Any]], out_dir: str | Path, slugs: list[str]) -> list[Path]:
    """One ``<slug>.json`` per record in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for record, slug in zip(records, slugs, strict=True):
        path = out_dir / f"{slug}.json"
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
