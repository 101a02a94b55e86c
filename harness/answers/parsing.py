"""Deterministic mapping of a model's free-text answer to an outcome.

Why a parser and not only an LLM judge: the study sent every response to a judge, one
call at a time. Most closed-form answers are "Yes", "No", "B", a class name or a short
sentence, which a few rules classify exactly, reproducibly and for free; only what the
rules cannot classify is worth a judge call (SPEC §6 --judge).

Why these rules: they are measured on real answers of LLaVA, LLaVA-Med v1.0/v1.5,
MedGemma and CheXagent (fixtures/answers, `python -m harness.answers.evaluate`), and they
read them as a careful person does. A wrong label invents a finding the model never
reported, so the parser stays conservative: what it cannot read with confidence is
"refused" (SPEC §3), never a guess.

How an answer is read (yes/no questions):

1. The answer is normalized (case, markdown, quotes), echoes of the answer instruction
   ("Please choose from the following two options: [yes, no]", "This is a closed-ended
   question, so the answer must be yes or no") and lead-ins ("Answer:", "Human:",
   "Assistant:") are dropped, and it is split into sentences.
2. Answer words. An explicit verdict ("Therefore, the answer is **no**.", "So the answer
   is yes.") decides, wherever it stands: it is the model's last word. Otherwise the
   answer word that opens a sentence ("Yes, there is ...", "No.") or stands alone
   between punctuation ("Based on the image, **no**, ...") is the answer. Both words
   ("Yes... no", "yes or no") give no answer; nor does a reply to an offer ("Human: Yes, I
   would like to proceed with the chest X-ray", "Yes, please provide ...").
3. Hedges are judged where they matter, and by what they are about (harness/answers/
   question.py). Any hedge (possibly, may, might, could be, suggestive of, consult ...) in
   the answer's own clause withdraws it; in a trailing clause of its sentence (", which
   ...", ", making ...") only when that clause speaks of the finding asked: "Yes, ...,
   which could be a renal cyst" to "a renal cyst?" is refused, "Yes, there is a focal
   mass, which is a possibly cancerous lump" is yes. Outside that sentence a soft hedge
   only explains ("Yes, there is a mass. This could indicate ...") and the answer stands.
   Doubt about the answer itself ("difficult to definitively determine", "cannot
   determine", "not sure", "I'm sorry") refuses wherever it stands, unless an explicit
   verdict comes after it (MedGemma's "It is difficult to definitively determine ...
   Therefore, the answer is no." commits to no), and unless it is about something else:
   the cause, type, nature or details of the finding, a definitive diagnosis, an AI
   disclaimer ("the exact nature of the mass cannot be determined", "I am an AI and
   cannot provide medical diagnoses"); from its hedge on, "whether", "if", "presence"
   bring it back to the answer. After a "no", "<finding> cannot be seen / identified /
   detected" says the finding is absent ("No, gallstones cannot be identified"); verbs of
   knowing ("cannot be determined") stay doubts, and "not possible" is a doubt only as "not
   possible to ..." ("This is not possible within the myocardium" denies).
4. Statements, when no answer word is given. A first clause that is exactly a class name
   ("Pneumonia.", "No tumor") is that class. A denied finding ("There is no evidence of
   an aortic aneurysm", "there are no obvious signs of pneumonia", "cardiomegaly is not
   apparent", "shows no abnormality") is the negative class; a finding stated as present
   ("The liver shows an enhancing mass") is the positive class; "appears normal /
   unremarkable / healthy" said of the whole study (or of the organ the task names) is
   the negative class. These map to labels directly, so they read the same whatever the
   question's polarity. Only plain assertions count: questions, requests ("Please
   evaluate ..."), hedged clauses and sentences about what a finding would look like
   ("... no opacity that would suggest pneumonia") are not read; of a hedged sentence, the
   clauses without a hedge (cut at "but", "however", ";") are ("..., possibly vessels,
   but it does not depict X"). A compound name is also found with its head noun first
   ("right rib fracture": "a fracture of the right rib"). A negation reaches a
   name through "or" and commas ("no pneumothorax, effusion, or pneumonia") but not
   through "and" ("no hemorrhage and a tumor is present": unclear, so refused). All the
   sentences that speak of the finding must agree, or the answer is refused. For a
   question about abnormality or normality (the variant's template says "normal"), a
   denial is refused when another sentence reports a finding ("No tumor is seen. There
   is a large effusion."); so is "appears normal" in any question.
5. The question's claim stated back, when no answer word is given: the content words of
   the question as the model read it (the rendered prompt, its medium and function words
   left out: "Are the temporal bones fractured?" -> temporal, bone, fracture) all in one
   plain clause assert it ("The temporal bones are fractured in the image"), a negation
   denies it ("The liver is not normal" to "Is the liver normal?"; "no sign of a skull
   fracture"). It is a yes or a no to that question, so it goes through yes_means; it
   must agree with the statements of 4. Questions of one content word are left to 4.
6. A yes/no word and a class statement that disagree give "refused" ("Tumor? No.").

Choice questions: an option letter asserted by form ("B", "(B)", "Option B", "the answer
is B") or an option text stated as the answer; the longer option text wins when one
contains the other ("no tumor" vs "tumor"); "A or B" and both texts give no answer. Doubt
anywhere, or any hedge in the sentence that carries the pick, refuses.

Decisions pinned by harness/tests/test_parsing.py:

- "probably" and "likely" commit to an answer; "appears to be" commits too ("Yes, there
  appears to be a mass" is yes): it is how radiology reports state findings.
- A leading "no" directly followed by a noun ("No tumor", "No abnormality") is a
  determiner, not an answer word: parse_yes_no gives None; parse_answer reads it as a
  denied finding.
- "yes", "yeah", "yep", "yup" mean yes; "no", "nope", "nah" mean no. A single "y" or
  "n", "none", "nodule", "know", "yesterday" mean nothing. "positive"/"negative" are
  not read as yes/no: for "Is this image normal?" they are ambiguous.
- A bare "a" followed by a word is the article ("A tumor is visible"), not option A.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from ..core import PromptVariant, TaskSpec
from .question import (answer_withdrawn, doubts_answer, finding_patterns, question_of, question_words, restated,
                       unseen_as_absent)
from .rules import (ARTICLE_RE, BOTH_LETTERS_RE, CLAUSE_SPLIT_RE, CLAUSE_STARTERS, FILLER_RE, LETTER_FOLLOWERS,
                    LETTER_RE, MENTION_NEGATORS, TRAILING_RE, VERDICT_RE, WORD_RE, hedged, is_word, normalize,
                    sentences, strip_prefix, strong_hedged, tokens, yes_no_word)
from .statements import statement

PARSER_VERSION = 4

# ---------------------------------------------------------------- yes / no words


def _lead_yes_no(toks: list[str]) -> Optional[str]:
    """The answer word that opens a sentence, unless it is a determiner "no" ("No tumor")."""
    i = next((i for i, t in enumerate(toks) if is_word(t)), None)
    if i is None:
        return None
    kind = yes_no_word(toks[i])
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    if kind == "no" and is_word(nxt) and nxt not in CLAUSE_STARTERS and not yes_no_word(nxt):
        return None
    return kind


def _isolated(toks: list[str], i: int) -> bool:
    """True when toks[i] stands alone: bounded by punctuation, the ends or other answer words."""
    prev = toks[i - 1] if i > 0 else None
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    return (not is_word(prev) or yes_no_word(prev) is not None) and (
        not is_word(nxt) or yes_no_word(nxt) is not None
    )


# A yes that accepts an offer, as LLaVA-Med v1.0 does when it writes the next user turn
# ("Human: Yes, I would like to proceed with the chest X-ray", "Yes, please provide the
# measurement"): a reply in a conversation, not an answer to the question.
REPLY_RE = re.compile(r"^(?:yes|no),?\s+(?:please\b|thanks?\b|thank you\b|i would like\b|i'd like\b|i want\b)")


def _answer_words(sents: list[str]) -> list[tuple[str, int, bool]]:
    """(yes|no, sentence index, is_verdict) for every answer word; questions and replies to
    an offer carry none."""
    hits = []
    for i, sent in enumerate(sents):
        if sent.endswith("?") or REPLY_RE.match(sent):
            continue
        for m in VERDICT_RE.finditer(sent):
            hits.append((m.group(1) or m.group(2), i, True))
        toks = tokens(sent)
        lead = _lead_yes_no(toks)
        if lead:
            hits.append((lead, i, False))
        for j, tok in enumerate(toks):
            kind = yes_no_word(tok)
            if kind and _isolated(toks, j):
                hits.append((kind, i, False))
    return hits


def _yes_no(sents: list[str], about: Optional[list] = None) -> tuple[Optional[str], bool]:
    """(answer, whether any answer word was given). The answer is None when the words
    disagree or are hedged; the flag keeps a withdrawn answer from being re-read as a
    statement. `about` (patterns of the finding asked) lets a hedge or doubt about
    something else leave the answer standing (harness.answers.question)."""
    hits = _answer_words(sents)
    if not hits:
        return None, False
    if len({kind for kind, _, _ in hits}) > 1:
        return None, True
    if hits[0][0] == "no":
        sents = [unseen_as_absent(s, about) for s in sents]
    verdicts = [i for _, i, is_verdict in hits if is_verdict]
    at = verdicts[-1] if verdicts else hits[0][1]
    if answer_withdrawn(sents[at], about):
        return None, True
    doubts = sents[at + 1:] if verdicts else sents[:at] + sents[at + 1:]
    if any(doubts_answer(s, about) for s in doubts):
        return None, True
    return hits[0][0], True


def parse_yes_no(text: str, about: Optional[list] = None) -> Optional[str]:
    """"yes", "no", or None for a hedge, a refusal, both answers or no answer word at all.
    Without `about` every hedge in the answer's sentence and every strong doubt withdraws it."""
    s = normalize(text)
    return _yes_no(sentences(s), about)[0] if s else None


# ---------------------------------------------------------------- option choice

def _clauses(s: str) -> list[str]:
    return [c.strip() for c in CLAUSE_SPLIT_RE.split(s) if c.strip()]


def _bare(clause: str) -> str:
    """A clause without filler, articles and "detected"-style tails, for exact name matches."""
    clause = ARTICLE_RE.sub("", FILLER_RE.sub("", strip_prefix(clause)))
    return TRAILING_RE.sub("", clause).strip()


def _starts_with(s: str, name: str) -> bool:
    return s.startswith(name) and (len(s) == len(name) or not (s[len(name)].isalnum() or s[len(name)] == "-"))


def _by_length(names: dict[str, str]) -> list[tuple[str, str]]:
    """(key, name) pairs, longest name first, so "no tumor" is tried before "tumor"."""
    return sorted(((k, n) for k, n in names.items() if n), key=lambda kn: -len(kn[1]))


def _picks(body: str, names: dict[str, str]) -> set[str]:
    """Options asserted: letters by form, a name forming a whole clause or opening the
    answer; failing those, names mentioned and not negated (longest names masked first)."""
    found = {next(g for g in m.groups() if g) for m in LETTER_RE.finditer(body)}
    found |= {c for c in map(_bare, _clauses(body)) if c in ("a", "b")}
    toks = WORD_RE.findall(body)
    words = [t for t in toks if is_word(t)]
    if words and words[0] in ("a", "b"):
        i = toks.index(words[0])
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if words[0] == "b" or not is_word(nxt) or nxt in LETTER_FOLLOWERS:
            found.add(words[0])
    for clause in _clauses(body):
        found |= {key for key, name in names.items() if name and _bare(clause) == name}
    head = ARTICLE_RE.sub("", FILLER_RE.sub("", body.lstrip(" ([{-'\"")))
    found |= {next((k for k, n in _by_length(names) if _starts_with(head, n)), None)} - {None}
    if found:
        return found
    masked = body
    for key, name in _by_length(names):
        pattern = re.compile(r"(?<![\w'-])" + re.escape(name) + r"(?![\w'-])")
        for m in pattern.finditer(masked):
            if not MENTION_NEGATORS.intersection(WORD_RE.findall(masked[: m.start()])[-4:]):
                found.add(key)
        masked = pattern.sub(lambda m: "\x00" * len(m.group(0)), masked)
    return found


def _both_names(body: str, names: dict[str, str]) -> bool:
    """True for "malignant or benign", "benign/malignant": the answer lists both options."""
    if len(names) < 2 or not all(names.values()):
        return False
    a, b = (re.escape(n) for n in names.values())
    joined = r"\s*(?:or|and|/|&|,|vs\.?|versus)\s*"
    return re.search(rf"(?<![\w'-])(?:{a}{joined}{b}|{b}{joined}{a})(?![\w'-])", body) is not None


def parse_choice(text: str, option_a: str, option_b: str) -> Optional[str]:
    """"A", "B", or None when neither or both are asserted (or the answer hedges)."""
    s = normalize(text)
    if not s or BOTH_LETTERS_RE.search(s):
        return None
    sents = sentences(s)
    if not sents or any(strong_hedged(x) for x in sents):
        return None
    names = {"a": normalize(option_a), "b": normalize(option_b)}
    if names["a"] == names["b"]:
        names = {}  # identical option texts cannot tell the options apart
    body = "\n".join(sents)
    if _both_names(body, names):
        return None
    picks = _picks(body, names)
    if len(picks) != 1:
        return None
    pick = picks.pop()
    carrier = next((x for x in sents if pick in _picks(x, names)), sents[0])
    return None if hedged(carrier) else pick.upper()


# ---------------------------------------------------------------- statements


def _class_answer(sents: list[str], task: TaskSpec) -> Optional[str]:
    """The label whose class name is the whole first clause ("Pneumonia.", "No tumor")."""
    names = {"positive": normalize(task.positive_name), "negative": normalize(task.negative_name)}
    clauses = _clauses(sents[0]) if sents else []
    if not clauses or names["positive"] == names["negative"]:
        return None
    bare = _bare(clauses[0])
    hits = [label for label, name in names.items() if name and bare == name]
    return hits[0] if len(hits) == 1 else None


# ---------------------------------------------------------------- outcome


def _other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


def _single(outcomes: Iterable[Optional[str]]) -> str:
    found = {o for o in outcomes if o}
    return found.pop() if len(found) == 1 else "refused"


def parse_answer(text: str, variant: PromptVariant, task: TaskSpec) -> str:
    """"positive", "negative" or "refused" for one response to one prompt variant.

    yes_no: "yes" maps to variant.yes_means, "no" to the other label; without an answer
    word, statements about the finding are read (module doc, 4); a yes/no word that
    contradicts a class-name answer gives "refused". choice: the letter maps through
    variant.options.
    """
    s = normalize(text)
    if not s:
        return "refused"
    if variant.kind == "choice":
        option_a, option_b = variant.option_names(task)
        letter = parse_choice(text, option_a, option_b)
        return {"A": variant.options[0], "B": variant.options[1]}.get(letter or "", "refused")
    sents = sentences(s)
    if not sents:
        return "refused"
    about = finding_patterns(task)
    answer, worded = _yes_no(sents, about)
    if worded and answer is None:
        return "refused"  # hedged or both answers: no statement may overrule that
    by_word = None if answer is None else (variant.yes_means if answer == "yes" else _other(variant.yes_means))
    if by_word is None and any(doubts_answer(x, about) for x in sents):
        return "refused"
    classes = {"p": normalize(task.positive_name), "n": normalize(task.negative_name)}
    if by_word is None and _both_names("\n".join(sents), classes):
        return "refused"  # "Pneumonia or normal": both classes named
    by_name = _class_answer(sents, task)
    if by_name is not None and by_word is None and hedged(sents[0]):
        return "refused"
    by_claim = None
    if by_word is None:
        stated = statement(sents, variant, task)
        if by_name is not None and stated not in (None, by_name):
            return "refused"  # "Tumor: not seen." names the class and denies it
        by_name = by_name or stated
        claim = restated(sents, question_words(question_of(variant, task)))
        by_claim = None if claim is None else (variant.yes_means if claim == "yes" else _other(variant.yes_means))
    return _single((by_word, by_name, by_claim))

