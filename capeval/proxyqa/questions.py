"""Question sets for caption-as-proxy QA: VLMEvalKit TSV, CaptionQA JSON, plain JSONL (no `vlmeval` needed).

Every loader returns a :class:`QuestionSet` of :class:`Question` objects. A question belongs to one image
(``image_id``), which is how questions meet captions: the caption of image ``X`` answers the questions of
``X``.

Formats (detected from the file name and content, see :func:`load_questions`):

* **VLMEvalKit TSV** (``.tsv``): columns ``index``, ``question``, options in single-letter columns ``A``,
  ``B``, ``C``, ..., ``answer`` (the correct letter, or the answer text for open questions; a ``['x', 'y']``
  list of acceptable answers is allowed), optional ``hint``, ``category``, ``l2-category``, ``split``, and
  ``image`` (base64, or the ``index`` of another row holding the same image, as VLMEvalKit stores
  duplicates) and/or ``image_path``. The image id is the ``image_id`` column when present, else the stem
  of ``image_path``, else the ``index`` of the row that holds the image's base64.
* **CaptionQA JSON** (``.json``): ``{image_id: [{"question", "choices", "answer", "category"}, ...]}`` as in
  the CaptionQA repository, or the Hugging Face export ``[{"id", "questions": [...], "domain"?}, ...]``.
  ``answer`` is the text of the correct choice; ``category`` may be ``[top, sub]``.
* **Shapes scenes** (``scenes.json`` of capeval's synthetic shapes dataset): questions derived from the
  ground truth by :mod:`capeval.proxyqa.shapes_questions`.
* **Plain JSONL** (``.jsonl``): one ``{"image_id", "question", "options"?, "answer", "category"?, "split"?,
  "hint"?, "question_id"?}`` per line. With ``options`` the answer is the option text or its letter; without,
  the answer is a string or a list of acceptable strings (an open question).

Question ids: the TSV ``index``; CaptionQA's ``<image_id>#<position in that image's list>``; the JSONL
``question_id`` when given, else ``<image_id>#<8 hex digits of a hash of the question and options>``. Option
shuffling is derived from these ids (see :mod:`capeval.proxyqa.shuffle`), never from the order of the file.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError, InputError
from capeval.hashing import sha256_file
from capeval.text import normalize_whitespace

log = logging.getLogger("capeval")

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_IMAGE_MAGIC = {"/9j/": "jpeg", "iVBOR": "png", "R0lGOD": "gif", "UklGR": "webp", "Qk": "bmp"}


@dataclass(frozen=True)
class Question:
    """One question about one image.

    ``options`` is empty for an open (short-answer) question. For a multiple-choice question ``answer_index``
    is the index of the correct option and ``answers`` holds its text; for an open question ``answers`` lists
    every acceptable answer.
    """

    qid: str
    image_id: str
    question: str
    options: tuple[str, ...]
    answers: tuple[str, ...]
    answer_index: int | None = None
    category: str = ""
    subcategory: str = ""
    split: str = ""
    hint: str = ""
    images: tuple[str, ...] = ()  # paths or data: URLs, for the with-image (VLM) run

    @property
    def is_mc(self) -> bool:
        """True for a multiple-choice question."""
        return bool(self.options)


@dataclass
class QuestionSet:
    """Questions read from one file, grouped by image."""

    path: str
    format: str
    questions: list[Question]
    sha256: str = ""
    skipped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_image: dict[str, list[Question]] = {}
        for q in self.questions:
            self.by_image.setdefault(q.image_id, []).append(q)

    @property
    def name(self) -> str:
        """The file's stem, used in signatures."""
        return Path(self.path).stem

    def __len__(self) -> int:
        return len(self.questions)

    def categories(self) -> list[str]:
        """Distinct non-empty categories, in first-seen order."""
        return list(dict.fromkeys(q.category for q in self.questions if q.category))

    def splits(self) -> list[str]:
        """Distinct non-empty splits/domains, in first-seen order."""
        return list(dict.fromkeys(q.split for q in self.questions if q.split))


# --------------------------------------------------------------------------------------------- helpers


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _text(value: Any) -> str:
    """A cell/field as normalised text ('' when missing); integral floats lose their '.0'."""
    if _is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return normalize_whitespace(str(value))


def _stable_qid(image_id: str, question: str, options: Iterable[str]) -> str:
    payload = "\x1f".join([image_id, question, *options]).encode()
    return f"{image_id}#{hashlib.sha256(payload).hexdigest()[:8]}"


def _parse_answer_list(value: Any) -> list[str]:
    """Open answers: a list, a ``['a', 'b']`` literal, or one string."""
    if isinstance(value, (list, tuple)):
        return [t for t in (_text(v) for v in value) if t]
    text = _text(value)
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, (list, tuple)):
            return [t for t in (_text(v) for v in parsed) if t]
    return [text] if text else []


def _mc_answer_index(options: list[str], answer: Any, *, path: str, qid: str,
                     letters: list[str] | None = None) -> int:
    """Index of the correct option from its text, or from its letter when no option has that text."""
    text = _text(answer)
    if not text:
        raise InputError("multiple-choice question without an answer", path=path, sample_id=qid)
    for i, opt in enumerate(options):
        if opt == text:
            return i
    folded = [o.casefold() for o in options]
    if folded.count(text.casefold()) == 1:
        return folded.index(text.casefold())
    letters = letters or list(LETTERS[: len(options)])
    letter = text.strip("().: ").upper()
    if len(letter) == 1 and letter in letters:
        return letters.index(letter)
    raise InputError(f"answer {text!r} is neither an option's text nor its letter; options are {options}",
                     path=path, sample_id=qid)


def _check_options(options: list[str], *, path: str, qid: str) -> None:
    if len(options) < 2:
        raise InputError(f"a multiple-choice question needs at least 2 options, got {options}", path=path,
                         sample_id=qid)
    if len(options) > len(LETTERS) - 1:
        raise InputError(f"too many options ({len(options)}); at most {len(LETTERS) - 1}", path=path,
                         sample_id=qid)
    folded = [o.casefold() for o in options]
    if len(set(folded)) != len(folded):
        raise InputError(f"duplicate options {options}", path=path, sample_id=qid)


def _split_category(value: Any) -> tuple[str, str]:
    if isinstance(value, (list, tuple)):
        parts = [_text(v) for v in value]
        return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")
    return _text(value), ""


def image_data_url(b64: str) -> str:
    """A base64 image as a ``data:`` URL, the media type read from its first bytes."""
    b64 = b64.strip()
    kind = next((k for prefix, k in _IMAGE_MAGIC.items() if b64.startswith(prefix)), "jpeg")
    return f"data:image/{kind};base64,{b64}"


def _unique(questions: list[Question], path: str) -> None:
    seen: set[str] = set()
    for q in questions:
        if q.qid in seen:
            raise InputError("duplicate question id", path=path, sample_id=q.qid)
        seen.add(q.qid)


# --------------------------------------------------------------------------------------------- VLMEvalKit TSV


def load_vlmevalkit_tsv(path: str | Path, images_dir: str | Path | None = None) -> QuestionSet:
    """Read a VLMEvalKit-style TSV (see the module docstring) with pandas, without importing `vlmeval`."""
    import pandas as pd

    path = str(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read as a TSV: {exc}", path=path) from exc
    cols = list(df.columns)
    for required in ("index", "question", "answer"):
        if required not in cols:
            raise InputError(f"VLMEvalKit TSV without an {required!r} column; columns are {cols}", path=path)
    option_cols = [c for c in LETTERS if c in cols]
    base = Path(images_dir) if images_dir else Path(path).resolve().parent

    # VLMEvalKit stores an image once; later rows hold the owner's index in their image cell (<= 64 chars).
    owner: dict[str, str] = {}
    image_cell: dict[str, str] = {}
    if "image" in cols:
        for idx, img in zip(df["index"], df["image"], strict=True):
            image_cell[str(idx)] = img
        for idx, img in image_cell.items():
            if not img:
                continue
            if len(img) <= 64:
                if img not in image_cell or len(image_cell[img]) <= 64:
                    raise InputError(f"image cell {img!r} names no row holding a base64 image", path=path,
                                     sample_id=idx)
                owner[idx] = img
            else:
                owner[idx] = idx

    questions: list[Question] = []
    skipped = {"multi_image": 0}
    for row in df.to_dict("records"):
        qid = _text(row["index"])
        if not qid:
            raise InputError("row without an index", path=path)
        question = _text(row["question"])
        if not question:
            raise InputError("empty question", path=path, sample_id=qid)
        letters = [c for c in option_cols if _text(row.get(c))]
        options = [_text(row[c]) for c in letters]
        images: list[str] = []
        image_id = _text(row.get("image_id"))
        raw_paths = _parse_answer_list(row.get("image_path")) if "image_path" in cols else []
        cell = image_cell.get(qid, "")
        if cell:
            payloads = _parse_answer_list(image_cell[owner[qid]]) if image_cell[owner[qid]].startswith("[") \
                else [image_cell[owner[qid]]]
            images = [image_data_url(b) for b in payloads]
        elif raw_paths:
            images = [str(p if Path(p).is_absolute() else base / p) for p in raw_paths]
        if len(images) > 1 or len(raw_paths) > 1:
            skipped["multi_image"] += 1
            continue
        if not image_id:
            if raw_paths:
                image_id = Path(raw_paths[0]).stem
            elif cell:
                image_id = owner[qid]
            else:
                raise InputError("row with no image, image_path or image_id", path=path, sample_id=qid)
        category, sub = _text(row.get("category")), _text(row.get("l2-category"))
        common = dict(qid=qid, image_id=image_id, question=question, category=category, subcategory=sub,
                      split=_text(row.get("split")), hint=_text(row.get("hint")), images=tuple(images))
        if options:
            _check_options(options, path=path, qid=qid)
            idx = _mc_answer_index(options, row["answer"], path=path, qid=qid, letters=letters)
            questions.append(Question(options=tuple(options), answers=(options[idx],), answer_index=idx,
                                      **common))
        else:
            answers = _parse_answer_list(row["answer"])
            if not answers:
                raise InputError("open question without an answer", path=path, sample_id=qid)
            questions.append(Question(options=(), answers=tuple(answers), **common))
    if skipped["multi_image"]:
        log.warning("%s: skipped %d multi-image question(s): one caption per question is needed",
                    path, skipped["multi_image"])
    _unique(questions, path)
    return QuestionSet(path, "vlmevalkit-tsv", questions, sha256_file(path), skipped)


# --------------------------------------------------------------------------------------------- CaptionQA JSON


def _captionqa_question(raw: Any, image_id: str, pos: int, split: str, path: str) -> Question:
    qid = f"{image_id}#{pos}"
    if not isinstance(raw, dict):
        raise InputError(f"a question must be an object, got {type(raw).__name__}", path=path, sample_id=qid)
    question = _text(raw.get("question"))
    if not question:
        raise InputError("empty or missing 'question'", path=path, sample_id=qid)
    choices = raw.get("choices", raw.get("options"))
    if not isinstance(choices, list):
        raise InputError("missing 'choices' list", path=path, sample_id=qid)
    options = [_text(c.get("text") if isinstance(c, dict) else c) for c in choices]
    options = [o for o in options if o and o.lower() != "nan"]
    _check_options(options, path=path, qid=qid)
    idx = _mc_answer_index(options, raw.get("answer"), path=path, qid=qid)
    category, sub = _split_category(raw.get("category", ""))
    return Question(qid=qid, image_id=image_id, question=question, options=tuple(options),
                    answers=(options[idx],), answer_index=idx, category=category, subcategory=sub,
                    split=_text(raw.get("domain", raw.get("split", split))), hint=_text(raw.get("hint")))


def load_captionqa_json(path: str | Path) -> QuestionSet:
    """Read CaptionQA's question JSON (dict by image, or the Hugging Face list of entries)."""
    path = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read as JSON: {exc}", path=path) from exc
    from capeval.proxyqa.shapes_questions import is_scenes_document, shapes_questions

    if is_scenes_document(doc):  # the shapes generator's scenes.json: questions from the ground truth
        return _plain_records(shapes_questions(doc, path), path, "shapes-scenes")
    questions: list[Question] = []
    if isinstance(doc, dict):
        for image_id, items in doc.items():
            if not isinstance(items, list):
                raise InputError("expected a list of questions per image", path=path, sample_id=image_id)
            questions.extend(_captionqa_question(q, str(image_id), i, "", path) for i, q in enumerate(items))
    elif isinstance(doc, list):
        if doc and all(isinstance(e, dict) and "image_id" in e and "question" in e for e in doc):
            return _plain_records(doc, path, "json-records")
        for n, entry in enumerate(doc):
            if not isinstance(entry, dict) or entry.get("id") is None:
                raise InputError(f"entry {n} has no 'id'", path=path)
            image_id = _text(entry["id"])
            split = _text(entry.get("domain", entry.get("split", "")))
            items = entry.get("questions") or ([entry] if "question" in entry else [])
            questions.extend(_captionqa_question(q, image_id, i, split, path) for i, q in enumerate(items))
    else:
        raise InputError("expected an object {image_id: [questions]} or a list of entries", path=path)
    _unique(questions, path)
    return QuestionSet(path, "captionqa-json", questions, sha256_file(path))


# --------------------------------------------------------------------------------------------- plain JSONL


def _plain_records(records: list[Any], path: str, fmt: str, lines: list[int] | None = None) -> QuestionSet:
    questions: list[Question] = []
    for n, rec in enumerate(records):
        where = f"line {lines[n]}" if lines else f"record {n}"
        if not isinstance(rec, dict):
            raise InputError(f"{where}: expected an object", path=path)
        image_id = _text(rec.get("image_id"))
        if not image_id:
            raise InputError(f"{where}: missing 'image_id'", path=path)
        question = _text(rec.get("question"))
        if not question:
            raise InputError(f"{where}: missing 'question'", path=path, sample_id=image_id)
        raw_opts = rec.get("options", rec.get("choices"))
        if isinstance(raw_opts, dict):  # {"A": "...", "B": "..."}
            raw_opts = [raw_opts[k] for k in sorted(raw_opts)]
        options = [_text(o) for o in raw_opts] if raw_opts else []
        qid = _text(rec.get("question_id", rec.get("qid"))) or _stable_qid(image_id, question, options)
        category, sub = _split_category(rec.get("category", ""))
        images = rec.get("image") or rec.get("image_path")
        common = dict(qid=qid, image_id=image_id, question=question, category=category,
                      subcategory=sub or _text(rec.get("subcategory")), split=_text(rec.get("split")),
                      hint=_text(rec.get("hint")), images=(str(images),) if isinstance(images, str) else ())
        if options:
            _check_options(options, path=path, qid=qid)
            idx = _mc_answer_index(options, rec.get("answer"), path=path, qid=qid)
            questions.append(Question(options=tuple(options), answers=(options[idx],), answer_index=idx,
                                      **common))
        else:
            answers = _parse_answer_list(rec.get("answers", rec.get("answer")))
            if not answers:
                raise InputError(f"{where}: open question without an answer", path=path, sample_id=qid)
            questions.append(Question(options=(), answers=tuple(answers), **common))
    _unique(questions, path)
    return QuestionSet(path, fmt, questions, sha256_file(path))


def load_jsonl(path: str | Path) -> QuestionSet:
    """Read plain JSONL questions (see the module docstring)."""
    path = str(path)
    records, lines = [], []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"line {n}: invalid JSON: {exc.msg}", path=path) from exc
                    lines.append(n)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from exc
    return _plain_records(records, path, "jsonl", lines)


# --------------------------------------------------------------------------------------------- dispatch


def shipped_question_sets() -> dict[str, Path]:
    """Question sets shipped in ``datasets/`` (``proxyqa-*.jsonl``), by name without extension."""
    from capeval.assets import asset_dir

    return {p.stem: p for p in sorted(asset_dir("datasets").glob("proxyqa-*.jsonl"))}


def resolve_questions_path(name_or_path: str | Path) -> Path:
    """A path as given, or the path of a shipped set named ``proxyqa-...`` (the prefix may be left out)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = shipped_question_sets()
    for key in (str(name_or_path), f"proxyqa-{name_or_path}"):
        if key in shipped:
            return shipped[key]
    raise CapevalError(f"question set {str(name_or_path)!r} not found: no such file, and no shipped set of "
                       f"that name (shipped: {', '.join(shipped) or 'none'})")


def load_questions(path: str | Path, fmt: str | None = None,
                   images_dir: str | Path | None = None) -> QuestionSet:
    """Load a question set; ``fmt`` is ``tsv``, ``captionqa`` or ``jsonl`` (default: from the file).

    Example:
        >>> qs = load_questions("thumb")  # the set shipped with capeval (datasets/proxyqa-thumb.jsonl)
        >>> qs.format, len(qs) > 40
        ('jsonl', True)
    """
    p = resolve_questions_path(path)
    suffix = p.suffix.lower()
    kind = fmt or {".tsv": "tsv", ".jsonl": "jsonl", ".json": "captionqa"}.get(suffix)
    if kind == "tsv":
        qs = load_vlmevalkit_tsv(p, images_dir)
    elif kind == "jsonl":
        qs = load_jsonl(p)
    elif kind == "captionqa":
        qs = load_captionqa_json(p)
    else:
        raise InputError(f"unknown question file type {suffix!r}: use .tsv (VLMEvalKit), .json (CaptionQA) "
                         "or .jsonl, or pass the format", path=str(p))
    if not qs.questions:
        raise InputError("no questions", path=str(p))
    if images_dir and kind != "tsv":
        qs = _attach_images(qs, Path(images_dir))
    return qs


def _attach_images(qs: QuestionSet, images_dir: Path) -> QuestionSet:
    """Give questions without an image the file ``images_dir/<image_id>.*`` (or a relative path's file)."""
    by_stem: dict[str, Path] = {}
    if images_dir.is_dir():
        for p in sorted(images_dir.iterdir()):
            by_stem.setdefault(p.stem, p)
    out = []
    for q in qs.questions:
        if q.images:
            imgs = tuple(i if i.startswith("data:") or Path(i).is_absolute() else str(images_dir / i)
                         for i in q.images)
        else:
            found = by_stem.get(q.image_id)
            imgs = (str(found),) if found else ()
        out.append(_replace(q, images=imgs))
    return QuestionSet(qs.path, qs.format, out, qs.sha256, qs.skipped)


def _replace(q: Question, **changes: Any) -> Question:
    from dataclasses import replace

    return replace(q, **changes)


def dump_images(qs: QuestionSet, out_dir: str | Path) -> list[Path]:
    """Write every base64 image of a question set as ``out_dir/<image_id>.<ext>`` (for captioning them)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    done: set[str] = set()
    for q in qs.questions:
        if q.image_id in done or not q.images or not q.images[0].startswith("data:"):
            continue
        head, _, b64 = q.images[0].partition(",")
        ext = re.sub(r"^data:image/(\w+);base64$", r"\1", head).replace("jpeg", "jpg")
        target = out / f"{q.image_id}.{ext}"
        target.write_bytes(base64.b64decode(b64))
        written.append(target)
        done.add(q.image_id)
    return written
