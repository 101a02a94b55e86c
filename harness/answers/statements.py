"""Statements about the finding, read when an answer gives no yes or no (the parser's rule 4,
harness/answers/parsing.py): a denied finding, a finding stated as present, "appears normal"
said of the study or of an organ the task names. Kept apart from the parser's answer words
and option letters; the word lists are in rules.py.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from ..core import PromptVariant, TaskSpec
from .rules import (ABNORMALITY_WORDS, AFFIRMED_AFTER_RE, CLAUSE_BREAK_RE, CONDITIONAL_RE, COORDINATORS, FINDING_NOUNS,
                    GENERIC_NORMAL_NAMES, GLOBAL_SUBJECTS, LIST_MARKS, NEGATION_BREAKERS, NEGATION_WINDOW, NEGATORS,
                    NORMAL_STATEMENT_RE, POST_NEGATION_RE, asserts, hedged, is_word, name_pattern, normalize, tokens)


def _polarity(sent: str, start: int, end: int) -> str:
    """How a mention is stated: "negative" when a negation governs it ("no evidence of X",
    "does not show any X", "X is not present"), "positive" when none is in sight, "unclear"
    when a negation stands earlier in the clause but too far to be sure it reaches the
    mention ("no evidence of pneumothorax, pleural effusion, or pneumonia")."""
    if POST_NEGATION_RE.match(sent[end:]):
        return "negative"
    scope: list[str] = []  # the clause before the mention, nearest token first
    for tok in reversed([t for t in tokens(sent[:start]) if is_word(t) or t in ",;"]):
        if tok in NEGATION_BREAKERS:
            break
        scope.append(tok)
    for i, tok in enumerate(scope):
        if tok in NEGATORS:
            between = scope[:i]
            if sum(map(is_word, between)) > NEGATION_WINDOW or COORDINATORS.intersection(between):
                return "unclear"
            if LIST_MARKS.intersection(between) and AFFIRMED_AFTER_RE.match(sent[end:]):
                return "unclear"
            return "negative"
    return "positive"


def _mentions(sent: str, patterns: Iterable[Optional[re.Pattern]]) -> list[str]:
    """The polarity of every mention of a name in the sentence."""
    return [_polarity(sent, m.start(), m.end()) for p in patterns if p for m in p.finditer(sent)]


def _task_words(task: TaskSpec) -> set[str]:
    """Content words of the task's names and modality ("abnormal liver" -> liver, "a brain tumor",
    "brain MRI" -> brain, tumor): the organs a normal statement may be about."""
    text = " ".join(normalize(x) for x in (task.positive_name, task.negative_name, task.disease, task.modality))
    generic = {"abnormal", "abnormality", "normal", "finding", "findings", "evidence", "signs", "present"}
    return {w for w in re.findall(r"[^\W\d_]{4,}", text) if w not in generic}


def _normal_statement(sent: str, subjects: set[str]) -> bool:
    """"appears normal / unremarkable / healthy", said of the whole study or of an organ
    the task names ("The liver appears to be normal" to "Is the liver normal?")."""
    for m in NORMAL_STATEMENT_RE.finditer(sent):
        if m.group(0).startswith("no "):
            return True
        # "a normal chest x-ray", "normal appearance": the words after "normal" name it;
        # "the liver appears to be normal": the words before the verb do.
        said_of = m.group("obj") if m.group("obj") else sent[: m.start()]
        if set(re.findall(r"[\w\-]+", said_of)) & (GLOBAL_SUBJECTS | subjects):
            return True
    return False


def _reports_finding(sents: list[str], own: list[Optional[re.Pattern]]) -> bool:
    """Whether any sentence reports a finding other than the task's own (or may do so):
    the veto on "no" answers to questions about abnormality or normality."""
    pats = [name_pattern(n) for n in FINDING_NOUNS]
    for sent in sents:
        if not asserts(sent):
            continue
        for p in own:
            if p:
                sent = p.sub(lambda m: "\x00" * len(m.group(0)), sent)
        if any(pol != "negative" for pol in _mentions(sent, pats)):
            return True
    return False


def _plain_parts(sents: list[str]) -> list[str]:
    """The plain assertions about this image: whole sentences without a hedge, and of a hedged
    sentence the clauses without one ("The image appears to be a micrograph, possibly of
    vessels, but it does not depict supernumerary digits": the clause after "but"). Questions,
    requests and sentences about what a finding would look like are left out."""
    parts = []
    for sent in sents:
        if not asserts(sent) or CONDITIONAL_RE.search(sent):
            continue
        if not hedged(sent):
            parts.append(sent)
        else:
            parts += [c for c in CLAUSE_BREAK_RE.split(sent) if c.strip() and not hedged(c)]
    return parts


def statement(sents: list[str], variant: PromptVariant, task: TaskSpec) -> Optional[str]:
    """The label asserted by statements about the finding, or None (see the module doc, 4)."""
    positive = [name_pattern(task.positive_name), name_pattern(task.disease)]
    generic_positive = any(w in normalize(task.positive_name) for w in ("abnormal", "pathology"))
    abnormal = [name_pattern(w) for w in ABNORMALITY_WORDS]
    if generic_positive:
        positive += abnormal
    neg_name = normalize(task.negative_name)
    negative = [] if neg_name in GENERIC_NORMAL_NAMES or neg_name.startswith("no ") else [name_pattern(neg_name)]
    subjects = _task_words(task)
    found: list[str] = []
    normal_only = True
    for sent in _plain_parts(sents):
        said = set(_mentions(sent, positive))
        said |= {"negative" for pol in _mentions(sent, abnormal) if pol == "negative"}
        said |= {"negative" if pol == "positive" else "unclear" for pol in _mentions(sent, negative)}
        is_normal = _normal_statement(sent, subjects)
        if is_normal:
            said.add("negative")
        if said:
            normal_only &= is_normal and not _mentions(sent, positive)
            found.append(said.pop() if len(said) == 1 else "unclear")
    if len(set(found)) != 1 or found[0] == "unclear":
        return None
    label = found[0]
    global_question = re.search(r"normal|healthy", variant.template, re.IGNORECASE) is not None
    if label == "negative" and (global_question or normal_only) and _reports_finding(sents, positive):
        return None
    return label
