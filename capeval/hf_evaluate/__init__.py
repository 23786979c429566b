"""capeval's metrics as Hugging Face ``evaluate`` modules: one thin ``evaluate.Metric`` class per file, each
calling :func:`compute`, so ``evaluate.load("./DIR/cider")`` gives capeval's numbers and signature, offline.

``capeval export-evaluate DIR`` writes them (``DIR/<metric>/<metric>.py``); the wheel ships the same files in
``capeval/hf_evaluate/modules`` (:func:`module_path`). Load with a path that starts with ``./`` (or is absolute):
``evaluate.load("DIR/cider")`` with one ``/`` is looked up on the Hugging Face hub when ``DIR/cider/cider.py``
does not exist where you run, and ``evaluate.load("cider")`` is a different, hub-hosted CIDEr.

Example:
    >>> "cider" in EXPORTED and module_path("cider").name
    'cider'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError, InputError

# Metrics whose inputs are predictions and references (plus optional images / judge options). pairwise needs a
# baseline captioner and proxy_qa a question set: they have no predictions/references form.
EXPORTED = ("bleu", "meteor", "rouge_l", "cider", "spice", "bertscore", "capture", "clair", "mllm_judge")
MODULES = Path(__file__).resolve().parent / "modules"

CITATIONS = {
    "bleu": "Papineni et al., BLEU: a Method for Automatic Evaluation of Machine Translation, ACL 2002",
    "meteor": "Denkowski and Lavie, Meteor Universal: Language Specific Translation Evaluation, WMT 2014",
    "rouge_l": "Lin, ROUGE: A Package for Automatic Evaluation of Summaries, 2004",
    "cider": "Vedantam et al., CIDEr: Consensus-based Image Description Evaluation, CVPR 2015",
    "spice": "Anderson et al., SPICE: Semantic Propositional Image Caption Evaluation, ECCV 2016",
    "bertscore": "Zhang et al., BERTScore: Evaluating Text Generation with BERT, ICLR 2020",
    "capture": "Dong et al., Benchmarking and Improving Detail Image Caption, 2024",
    "clair": "Chan et al., CLAIR: Evaluating Image Captions with Large Language Models, EMNLP 2023",
    "mllm_judge": "Chen et al., MLLM-as-a-Judge, ICML 2024",
}

INPUTS = """Args:
    predictions: list of str, one candidate caption per sample.
    references: list of lists of str, the reference captions of each sample.
    images: (optional) list of image paths, one per sample, for image-based metrics.
    seeds: (optional) run a stochastic metric with seeds 0..seeds-1 (default 1).
    any other keyword: a capeval metric option (e.g. judge_model, judge_base_url, bertscore_model).
Returns:
    one value per output of the metric (the corpus score, capeval's scale), plus "signature" (the headline
    output's signature string) and "signatures" (every output's).
"""

_TEMPLATE = '''"""capeval's ``{name}`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class {cls}(evaluate.Metric):
    """{summary}"""

    def _info(self):
        return module_info("{name}")

    def _compute(self, predictions, references, **options):
        return compute("{name}", predictions, references, **options)
'''


def _class_name(metric: str) -> str:
    return "".join(part.capitalize() for part in metric.split("_"))


def _summary(metric: str) -> str:
    from capeval.registry import get_metric_class

    doc = (get_metric_class(metric).__doc__ or metric).strip().splitlines()[0]
    return doc.replace('"""', "'''").replace("\\", "\\\\")


def module_source(metric: str) -> str:
    """The text of ``<metric>.py``: one ``evaluate.Metric`` subclass calling :func:`compute`."""
    if metric not in EXPORTED:
        raise CapevalError(f"no evaluate module for {metric!r}; modules exist for {', '.join(EXPORTED)}")
    return _TEMPLATE.format(name=metric, cls=_class_name(metric), summary=_summary(metric))


def export_modules(folder: str | Path, metrics: Sequence[str] | None = None) -> list[Path]:
    """Write ``folder/<metric>/<metric>.py`` for each metric (default: all of :data:`EXPORTED`)."""
    out = []
    for metric in metrics or EXPORTED:
        source = module_source(metric)  # an unknown metric fails before anything is written
        path = Path(folder) / metric / f"{metric}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        out.append(path)
    return out


def module_path(metric: str) -> Path:
    """The folder of the module shipped with capeval: ``evaluate.load(str(module_path("cider")))``."""
    if metric not in EXPORTED:
        raise CapevalError(f"no evaluate module for {metric!r}; modules exist for {', '.join(EXPORTED)}")
    return MODULES / metric


def module_info(metric: str):
    """The ``evaluate.MetricInfo`` of a module: description, citation, input features."""
    import datasets
    import evaluate

    from capeval.registry import get_metric_class

    cls = get_metric_class(metric)
    description = (cls.__doc__ or metric).strip() + f"\n\nOutputs: {', '.join(cls.outputs)}. Computed by capeval."
    return evaluate.MetricInfo(
        description=description,
        citation=CITATIONS.get(metric, ""),
        inputs_description=INPUTS,
        features=datasets.Features({
            "predictions": datasets.Value("string"),
            "references": datasets.Sequence(datasets.Value("string")),
        }),
        homepage="https://pypi.org/project/capeval/",
    )


def compute(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]], *,
            images: Sequence[str] | None = None, seeds: int = 1, **options: Any) -> dict[str, Any]:
    """Score ``predictions`` against ``references`` with one capeval metric; corpus values and signatures.

    Samples are ids ``"0"``, ``"1"``, ... in order: the same numbers as ``capeval score`` on those captions.
    """
    from capeval.api import evaluate
    from capeval.io.readers import CaptionFile

    if len(predictions) != len(references):
        raise InputError(f"{len(predictions)} predictions but {len(references)} lists of references",
                         path="<evaluate>")
    if images is not None and len(images) != len(predictions):
        raise InputError(f"{len(images)} images for {len(predictions)} predictions", path="<evaluate>")
    ids = [str(i) for i in range(len(predictions))]
    refs = CaptionFile("<evaluate references>", {i: list(r) for i, r in zip(ids, references, strict=True)}, "str")
    cands = CaptionFile("<evaluate predictions>", {i: [p] for i, p in zip(ids, predictions, strict=True)}, "str",
                        images={i: str(img) for i, img in zip(ids, images, strict=True)} if images else {})
    results = evaluate(refs, {"predictions": cands}, [metric], seeds=seeds, options=options)
    out: dict[str, Any] = {}
    for row in results.summary.itertuples(index=False):
        out[row.metric] = float(row.mean)
    outputs = list(results.metric_info[metric]["outputs"])
    out["signature"] = results.signatures[outputs[0]]
    out["signatures"] = {k: results.signatures[k] for k in outputs}
    return out
