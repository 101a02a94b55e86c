"""Deterministic mapping of a model's free-text answer to an outcome.

Why a parser and not only an LLM judge: the study sent every response to a judge, one
call at a time. Almost every closed-form answer is "Yes", "No", "B" or a class name,
which a few rules classify exactly, reproducibly and for free; only what the rules
cannot classify is worth a judge call (SPEC §6 --judge).

The parser is deliberately conservative. Turning an unclear answer into a label would
invent findings (a polarity flip that the model never made); turning it into
"refused" only costs the model accuracy, which is what the study does with ambiguous
answers too (SPEC §3: refusal, hedging, both answers or no parsable answer).

Decisions on ambiguous cases (the tests in harness/tests/test_parsing.py pin them):

- Any hedge anywhere wins: "Yes, but not certain", "No. Please consult a radiologist"
  and "Possibly malignant" are refused. The same rule holds wherever the hedge sits, so
  a trailing disclaimer cannot make an answer count.
- "probably" and "likely" are not hedges (they commit to an answer); "possibly",
  "maybe", "may", "might", "could be", "could not" are ("I could see a mass" is not).
- An answer word counts when it opens the answer ("Yes, there is a lesion") or stands
  on its own between punctuation ("Based on the image, yes."). Answer words used
  inside a sentence ("there is no tumor") are not answers. Two different answers that
  count ("Yes... no", "yes/no") give None.
- A leading "no" directly followed by a noun ("No tumor", "No abnormality") is a
  determiner, not an answer: "No abnormality" to "Is this image normal?" means yes.
  parse_yes_no gives None; parse_answer still maps "No tumor" / "No pneumonia" through
  the class names.
- "yes", "yeah", "yep", "yup" mean yes; "no", "nope", "nah" mean no. A single "y" or
  "n", "none", "nodule", "know", "yesterday" mean nothing. "positive"/"negative" are
  not read as yes/no: for "Is this image normal?" they are ambiguous.
- A bare "a" followed by a word is the article ("A tumor is visible"), not option A;
  "A", "A.", "(A)", "A)", "Option A" are the letter. "B" is the letter wherever it
  opens the answer. "A or B", "A and B", "A/B" give None.
- Option texts that contain each other ("no tumor" / "tumor") are matched longest
  first, so "no tumor" never counts as a mention of "tumor".
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Optional

from .core import PromptVariant, TaskSpec

PARSER_VERSION = 1

_YES = frozenset({"yes", "yeah", "yep", "yup"})
_NO = frozenset({"no", "nope", "nah"})

# Words that may follow a leading "no" when it is the answer ("No there is none"),
# as opposed to a determiner ("No tumor").
_CLAUSE_STARTERS = frozenset(
    "there it it's its this that the i i'm we these they those he she image scan".split()
)

_HEDGE_PATTERNS = (
    r"can ?not", r"can'?t", r"could(?:n'?t| not| be| also| indicate| represent| suggest)",
    r"unable to", r"not able to",
    r"impossible to", r"not possible", r"not sure", r"unsure", r"uncertain\w*",
    r"not certain", r"not clear", r"unclear", r"inconclusive", r"indeterminate",
    r"(?:difficult|hard) to (?:say|tell|determine|assess|know|judge)",
    r"(?:don'?t|do not|does not|doesn'?t) know", r"as an ai", r"language model",
    r"not a (?:doctor|physician|radiologist)", r"sorry", r"apologi[sz]e\w*",
    r"consult\w*", r"seek", r"medical advice",
    r"(?:healthcare|medical|qualified) (?:professional|provider)\w*",
    r"possibl[ey]", r"perhaps", r"maybe", r"may", r"might", r"neither",
    r"yes and no", r"yes or no", r"no or yes", r"insufficient", r"not enough",
)
_HEDGE_RE = re.compile(r"(?<![\w'])(?:" + "|".join(_HEDGE_PATTERNS) + r")(?![\w'])")

# Lead-ins that carry no answer: "Answer:", "The final answer is", "Assistant:".
_PREFIX_RE = re.compile(
    r"^[\s\W]*?(?:(?:(?:the|my)\s+)?(?:final\s+|correct\s+|short\s+)?"
    r"(?:answer|option|choice|response|reply|output|prediction|diagnosis)(?![\w'])(?:\s+is)?\s*[:=\-]?"
    r"|(?:assistant|model)\s*:)\s*"
)
# Lead-ins before a class or option name: "It is benign", "The image shows a tumor".
_FILLER_RE = re.compile(
    r"^(?:(?:it|this|that)(?:\s+is|'s)|(?:the\s+)?(?:image|scan|lesion|tissue)\s+(?:is|shows)"
    r"|i\s+(?:choose|pick|select)|there\s+(?:is|are))\s+"
)
_ARTICLE_RE = re.compile(r"^(?:(?:a|an|the)\s+)+")
# Words after a class name that keep it the whole answer: "Pneumonia detected."
_TRAILING_RE = re.compile(r"\s+(?:is\s+)?(?:present|detected|seen|visible|identified|noted)$")
_LETTER_RE = re.compile(
    r"\(\s*([ab])\s*\)|\[\s*([ab])\s*\]|(?<![\w'(\[])([ab])\)"
    r"|(?<![\w'])(?:option|choice|letter|choose|select|pick)\s*:?\s*\(?([ab])(?![\w'])"
)
_BOTH_LETTERS_RE = re.compile(r"(?<![\w'])\(?[ab]\)?\s*(?:and|or|&|/|,)\s*\(?[ab]\)?(?![\w'])")
_CLAUSE_SPLIT_RE = re.compile(r"[.,;:!?()\[\]{}/\n|]|\s-+\s|\s*—\s*")
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")
_NEGATORS = frozenset(
    "not isn't isnt no without than nor neither exclude excluded excludes ruled absence".split()
)
_NEGATION_WINDOW = 4
# Words that follow a letter but never the article: "A is correct", "B would fit".
_LETTER_FOLLOWERS = frozenset("is was would seems appears fits matches".split())


def _normalize(text: object) -> str:
    """Casefold and strip decoration (markdown, quotes, odd spacing) that carries no answer."""
    if not isinstance(text, str):
        return ""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    s = re.sub(r"[*_~#>\"\u201c\u201d]", " ", s)
    s = re.sub(r"(?<![^\W_])'|'(?![^\W_])", " ", s)  # quotes, keeping "don't"
    return re.sub(r"\s+", " ", s).strip()


def _strip_prefix(s: str) -> str:
    """Drop answer lead-ins ("Answer:", "The answer is") so the real answer leads."""
    while True:
        m = _PREFIX_RE.match(s)
        if not m or m.end() == 0:  # every lead-in holds a word, so the loop always shrinks s
            return s
        s = s[m.end():]


def _hedged(s: str) -> bool:
    return _HEDGE_RE.search(s) is not None


def _tokens(s: str) -> list[str]:
    return _TOKEN_RE.findall(s)


def _is_word(tok: Optional[str]) -> bool:
    return tok is not None and tok[0].isalnum()


def _yes_no_word(tok: Optional[str]) -> Optional[str]:
    if tok in _YES:
        return "yes"
    if tok in _NO:
        return "no"
    return None


def _lead_yes_no(toks: list[str]) -> Optional[str]:
    """The answer word that opens the text, unless it is a determiner "no" ("No tumor")."""
    i = next((i for i, t in enumerate(toks) if _is_word(t)), None)
    if i is None:
        return None
    kind = _yes_no_word(toks[i])
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    if kind == "no" and _is_word(nxt) and nxt not in _CLAUSE_STARTERS and not _yes_no_word(nxt):
        return None
    return kind


def _isolated(toks: list[str], i: int) -> bool:
    """True when toks[i] stands alone: bounded by punctuation, the ends or other answer words."""
    prev = toks[i - 1] if i > 0 else None
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    return (not _is_word(prev) or _yes_no_word(prev) is not None) and (
        not _is_word(nxt) or _yes_no_word(nxt) is not None
    )


def parse_yes_no(text: str) -> Optional[str]:
    """"yes", "no", or None for a hedge, a refusal, both answers or no answer at all."""
    s = _normalize(text)
    if not s or _hedged(s):
        return None
    toks = _tokens(_strip_prefix(s))
    found = {_lead_yes_no(toks)} - {None}
    for i, tok in enumerate(toks):
        kind = _yes_no_word(tok)
        if kind and _isolated(toks, i):
            found.add(kind)
    return found.pop() if len(found) == 1 else None


def _clauses(s: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_SPLIT_RE.split(s) if c.strip()]


def _bare(clause: str) -> str:
    """A clause without filler, articles and "detected"-style tails, for exact name matches."""
    clause = _strip_prefix(clause)
    clause = _FILLER_RE.sub("", clause)
    clause = _ARTICLE_RE.sub("", clause)
    return _TRAILING_RE.sub("", clause).strip()


def _starts_with(s: str, name: str) -> bool:
    return s.startswith(name) and (len(s) == len(name) or not (s[len(name)].isalnum() or s[len(name)] == "-"))


def _by_length(names: dict[str, str]) -> list[tuple[str, str]]:
    """(key, name) pairs, longest name first, so "no tumor" is tried before "tumor"."""
    return sorted(((k, n) for k, n in names.items() if n), key=lambda kn: -len(kn[1]))


def _lead_name(body: str, names: dict[str, str]) -> Optional[str]:
    """The key of the name the answer opens with ("Benign, smooth borders" -> benign)."""
    head = _ARTICLE_RE.sub("", _FILLER_RE.sub("", body.lstrip(" ([{-'\"")))
    for key, name in _by_length(names):
        if _starts_with(head, name):
            return key
    return None


def _isolated_names(body: str, names: dict[str, str]) -> set[str]:
    """Keys of names that form a whole clause ("..., malignant.")."""
    found = set()
    for clause in _clauses(body):
        bare = _bare(clause)
        found |= {key for key, name in names.items() if name and bare == name}
    return found


def _mentions(body: str, names: dict[str, str]) -> set[str]:
    """Keys of names mentioned anywhere and not negated, longest names masked first."""
    found, masked = set(), body
    for key, name in _by_length(names):
        pattern = re.compile(r"(?<![\w'-])" + re.escape(name) + r"(?![\w'-])")
        for m in pattern.finditer(masked):
            before = _tokens(masked[: m.start()])[-_NEGATION_WINDOW:]
            if not _NEGATORS.intersection(before):
                found.add(key)
        masked = pattern.sub(lambda m: "\x00" * len(m.group(0)), masked)
    return found


def _letters(body: str) -> set[str]:
    """Option letters asserted by form: "(B)", "B)", "Option B", a bare "B." or a leading "B"."""
    found = {next(g for g in m.groups() if g) for m in _LETTER_RE.finditer(body)}
    found |= {c for c in map(_bare, _clauses(body)) if c in ("a", "b")}
    toks = _tokens(body)
    words = [t for t in toks if _is_word(t)]
    if words and words[0] in ("a", "b"):
        i = toks.index(words[0])
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if words[0] == "b" or not _is_word(nxt) or nxt in _LETTER_FOLLOWERS:
            found.add(words[0])
    return found


def _both_names(body: str, names: dict[str, str]) -> bool:
    """True for "malignant or benign", "benign/malignant": the answer lists both options."""
    if len(names) < 2 or not all(names.values()):
        return False
    a, b = (re.escape(n) for n in names.values())
    joined = r"\s*(?:or|and|/|&|,|vs\.?|versus)\s*"
    pattern = rf"(?<![\w'-])(?:{a}{joined}{b}|{b}{joined}{a})(?![\w'-])"
    return re.search(pattern, body) is not None


def parse_choice(text: str, option_a: str, option_b: str) -> Optional[str]:
    """"A", "B", or None when neither or both are asserted (or the answer hedges)."""
    s = _normalize(text)
    if not s or _hedged(s) or _BOTH_LETTERS_RE.search(s):
        return None
    body = _strip_prefix(s)
    names = {"a": _normalize(option_a), "b": _normalize(option_b)}
    if names["a"] == names["b"]:
        names = {}  # identical option texts cannot tell the options apart
    if _both_names(body, names):
        return None
    picks = _letters(body) | _isolated_names(body, names)
    lead = _lead_name(body, names)
    if lead:
        picks.add(lead)
    if not picks:
        picks = _mentions(body, names)
    return picks.pop().upper() if len(picks) == 1 else None


def _class_answer(s: str, task: TaskSpec) -> Optional[str]:
    """The label whose class name is the whole first clause ("Pneumonia.", "No tumor")."""
    names = {"positive": _normalize(task.positive_name), "negative": _normalize(task.negative_name)}
    clauses = _clauses(_strip_prefix(s))
    if not clauses or names["positive"] == names["negative"]:
        return None
    bare = _bare(clauses[0])
    hits = [label for label, name in names.items() if name and bare == name]
    return hits[0] if len(hits) == 1 else None


def _absence_answer(s: str, task: TaskSpec) -> Optional[str]:
    """"No pneumonia", "No evidence of a tumor": the positive class is denied -> negative."""
    positive = _ARTICLE_RE.sub("", _normalize(task.positive_name))
    if not positive:
        return None
    clauses = _clauses(_strip_prefix(s))
    if not clauses:
        return None
    m = re.fullmatch(
        r"(?:there\s+(?:is|are)\s+)?no\s+(?:(?:evidence|signs?|indications?|features?)\s+of\s+)?"
        r"(?:(?:a|an|the)\s+)?(.+?)", clauses[0])
    return "negative" if m and _TRAILING_RE.sub("", m.group(1)) == positive else None


def _other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


def _single(outcomes: Iterable[Optional[str]]) -> str:
    found = {o for o in outcomes if o}
    return found.pop() if len(found) == 1 else "refused"


def parse_answer(text: str, variant: PromptVariant, task: TaskSpec) -> str:
    """"positive", "negative" or "refused" for one response to one prompt variant.

    yes_no: "yes" maps to variant.yes_means, "no" to the other label; an answer whose
    first clause is exactly one class name maps to that class, and a yes/no word that
    contradicts it gives "refused". choice: the letter maps through variant.options.
    """
    s = _normalize(text)
    if not s or _hedged(s):
        return "refused"
    if variant.kind == "choice":
        option_a, option_b = variant.option_names(task)
        letter = parse_choice(text, option_a, option_b)
        return {"A": variant.options[0], "B": variant.options[1]}.get(letter or "", "refused")
    answer = parse_yes_no(text)
    by_word = None if answer is None else (variant.yes_means if answer == "yes" else _other(variant.yes_means))
    by_name = _class_answer(s, task)
    if by_word is None and by_name is None:
        by_name = _absence_answer(s, task)
    return _single((by_word, by_name))
