"""Reading an answer against the question it answers: what a hedge is about, and the
question's own claim stated back.

Why (issue 21): on real answers of general small VLMs and medical ones, the misses of a
parser that reads only answer words and class names are committed answers read as
refusals, of two kinds:

- a committed answer followed by a caveat about something else: "Yes, the diaphragm is
  obscured, making it difficult to see the entire structure"; "Yes, there is a focal
  mass, which is a large and possibly cancerous lump"; "... However, the exact nature of
  the mass cannot be determined from the image". A doubt withdraws the answer only when
  it is about the answer: about the finding asked, about whether it is there, or about
  nothing in particular ("I am not sure"). A doubt about the cause, type, nature, extent
  or a definitive diagnosis leaves the answer standing (the corpus README, rule 2);
- no yes or no, but the question's claim stated back: "The brain appears to be normal"
  to "Is the brain normal?", "there is no sign of a skull fracture" to "Is there sign of a
  skull fracture?", "The temporal bones are fractured" to "Are the temporal bones
  fractured?". The question's content words (`question_words`, stemmed; the medium and
  the question's function words dropped) all in one plain clause assert the claim: that
  is a "yes", or a "no" when a negation governs them. Only questions with at least two
  content words are read this way: "normal" alone, or a bare class name, is left to the
  statement rules, which know which findings contradict a claim of normality.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from ..core import PromptVariant, TaskSpec
from .rules import (ABNORMALITY_WORDS, CONDITIONAL_RE, GENERIC_NORMAL_NAMES, NEGATION_BREAKERS, NEGATORS, POST_NEGATION_RE, SOFT_HEDGE, STRONG_HEDGE, asserts, hedged,
                    is_word, name_pattern, normalize, tokens)

# Function words of closed questions, and the medium the image is in: neither is the claim.
QUESTION_STOP = frozenset(
    "is are was were be been there this that these those the a an any some of in on at to for with by from "
    "does do did show shows shown showing seen see visible present presence evidence sign signs noted "
    "identified demonstrated observed observe appear appears found find can could it its there's what which "
    "how or and you we patient patient's case here image images picture photo photograph view given".split()
)
MEDIUM = frozenset(
    "scan scans ct mri mr x-ray x-rays xray radiograph radiographs film ultrasound sonogram slide study "
    "examination exam micrograph histology histopathology".split()
)
# A trailing clause of the answer's sentence: what follows explains or qualifies, it is
# not the answer ("Yes, there is a mass, which could be malignant").
TRAIL_RE = re.compile(r",\s*(?:which|that|making|suggesting|indicating|as|due to|because|consistent with)\b")
# What a doubt may be about without touching the answer: the cause, kind or details of
# the finding, or a definitive diagnosis.
ELSEWHERE = frozenset(
    "cause causes caused nature type types kind origin etiology aetiology extent severity stage grade "
    "prognosis treatment details detail entire exact underlying reason reasons diagnosis diagnose "
    "malignant benign malignancy specific structure diagnoses".split()
)
# ... unless the doubt, from its hedge on, names the answer itself: "difficult to
# determine whether ...", "cannot confirm the presence of ...".
ABOUT_ANSWER = re.compile(r"\b(?:whether|if|presence|absence|answer|yes|or not|is there|are there)\b")


# "no sign of X", "does not show any signs of X": the negation denies X ("a sign of X" stays
# a conditional, as the statement rules read it).
NO_SIGN_RE = re.compile(r"\b(no|not|without)((?:\s+(?!signs?\b)[\w']+){0,2}?)\s+"
                        r"(?:(?:any|obvious|clear|definite|visible|evident|apparent)\s+)*signs?\s+of\b")


def stem(word: str) -> str:
    """A crude stem: "fractured", "fractures" and "fracture" are one word, "ribs" and "rib",
    "bones" and "bone" (as "bon")."""
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def question_words(question: str) -> frozenset[str]:
    """The stemmed content words of the question's first sentence (up to its "?"): the
    claim it asks about, without the medium and the words that name it ("in the given
    abdomen CT scan", "this chest X-ray": abdomen and chest say where the image is from)."""
    toks = [t for t in tokens(normalize(question).split("?")[0]) if is_word(t)]
    medium_of = {i - k for i, t in enumerate(toks) if t in MEDIUM for k in (1, 2)}
    return frozenset(stem(t) for i, t in enumerate(toks)
                     if t not in QUESTION_STOP and t not in MEDIUM and i not in medium_of)


def split_trail(sentence: str) -> tuple[str, str]:
    """(the sentence's own clause, its trailing explanation), split at ", which", ", making" ..."""
    m = TRAIL_RE.search(sentence)
    return (sentence, "") if m is None else (sentence[: m.start()], sentence[m.start():])


def mentions(text: str, about: Iterable[Optional[re.Pattern]]) -> bool:
    return any(p.search(text) for p in about if p)


def doubts_answer(sentence: str, about: Optional[list] = None) -> bool:
    """A strong doubt (harness.answers.rules.STRONG_HEDGE) that is about the answer. With
    `about` (patterns of the finding asked) a doubt about something else ("the exact nature of
    the mass cannot be determined", "difficult to provide a definitive diagnosis") is not;
    without it every strong doubt is."""
    m = STRONG_HEDGE.search(sentence)
    if m is None:
        return False
    if about is None:
        return True
    words = {t for t in tokens(sentence) if is_word(t)}
    return not (words & ELSEWHERE) or ABOUT_ANSWER.search(sentence, m.start()) is not None


# "<finding> cannot be seen / identified": after a "no", a way of saying it is absent, not a
# doubt ("No, gallstones cannot be identified by the ultrasound image"). Verbs of knowing
# ("cannot be determined", "cannot be confirmed") stay doubts.
UNSEEN_RE = re.compile(r"^\s+(?:can ?not|can't|could ?not|couldn't)\s+be\s+(?:clearly\s+|readily\s+|definitely\s+)?"
                       r"(?:seen|identified|visuali[sz]ed|detected|appreciated|observed|found|noted)\b")


def unseen_as_absent(sentence: str, about: Optional[list]) -> str:
    """The sentence with "<finding> cannot be seen" put as "<finding> is not seen", for a "no"
    answer: the finding named right before the phrase is what cannot be seen."""
    for p in about or ():
        for m in p.finditer(sentence):
            tail = UNSEEN_RE.match(sentence[m.end():])
            if tail:
                return sentence[: m.end()] + " is not seen" + sentence[m.end() + tail.end():]
    return sentence


def answer_withdrawn(sentence: str, about: Optional[list] = None) -> bool:
    """Does a hedge withdraw the answer given in this sentence? Any hedge in its own clause
    does; one in a trailing clause does only when that clause speaks of the finding asked
    ("Yes, a cystic structure, which could be a renal cyst" to "a renal cyst?") or doubts the
    answer. Without `about`, any hedge in the sentence does."""
    if about is None:
        return hedged(sentence)
    own, trail = split_trail(sentence)
    if hedged(own):
        return True
    if not trail:
        return False
    if doubts_answer(trail, about):
        return True
    return SOFT_HEDGE.search(trail) is not None and mentions(trail, about)


def _clauses(sentence: str) -> list[list[str]]:
    """Token lists of the sentence's clauses, cut at "but", "however", ";"."""
    out: list[list[str]] = [[]]
    for tok in tokens(sentence):
        if tok in NEGATION_BREAKERS:
            out.append([])
        else:
            out[-1].append(tok)
    return [c for c in out if c]


def _negated(clause: list[str], first: int, last: int) -> bool:
    before = [t for t in clause[:first] if is_word(t)][-6:]
    inside = [t for t in clause[first:last + 1] if is_word(t)]
    if NEGATORS.intersection(before) or NEGATORS.intersection(inside):
        return True
    return POST_NEGATION_RE.match(" " + " ".join(clause[last + 1:last + 12])) is not None


def restated(sents: list[str], qwords: frozenset[str]) -> Optional[str]:
    """"yes" / "no" when plain assertions state the question's claim (all of `qwords` in one
    clause, not hedged, not conditional); None when none does or they disagree."""
    if len(qwords) < 2:
        return None
    found = set()
    for sent in sents:
        own, _ = split_trail(sent)
        own = NO_SIGN_RE.sub(r"\1\2", own)
        if not asserts(sent) or hedged(own) or CONDITIONAL_RE.search(own):
            continue
        for clause in _clauses(own):
            stems = [stem(t) if is_word(t) else None for t in clause]
            at = [i for i, s in enumerate(stems) if s in qwords]
            if {stems[i] for i in at} != set(qwords):
                continue
            found.add("no" if _negated(clause, at[0], at[-1]) else "yes")
    return found.pop() if len(found) == 1 else None


def question_of(variant: PromptVariant, task: TaskSpec) -> str:
    """The question as the model read it (the template when it cannot be rendered)."""
    try:
        return variant.render(task)
    except (KeyError, IndexError, ValueError, AttributeError):
        return variant.template


def finding_patterns(task: TaskSpec) -> list:
    """What a hedge must speak of to withdraw an answer: the task's finding (its positive
    name and disease, the generic abnormality words for an "abnormal" class) and a negative
    name that is more than "normal"."""
    about = [name_pattern(task.positive_name), name_pattern(task.disease)]
    if any(w in normalize(task.positive_name) for w in ("abnormal", "pathology")):
        about += [name_pattern(w) for w in ABNORMALITY_WORDS]
    neg = normalize(task.negative_name)
    if neg not in GENERIC_NORMAL_NAMES and not neg.startswith("no "):
        about.append(name_pattern(neg))
    return [p for p in about if p]
