"""Word lists and small text helpers of the answer parser (harness/answers/parsing.py).

Kept apart so the parser reads as a procedure and the lists can be reviewed on their
own. Every list was checked against the real-answer corpus (fixtures/answers); the
reasons for the entries that matter are given next to them.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Optional

YES = frozenset({"yes", "yeah", "yep", "yup"})
NO = frozenset({"no", "nope", "nah"})

# Words that may follow a leading "no" when it is the answer ("No there is none"),
# as opposed to a determiner ("No tumor").
CLAUSE_STARTERS = frozenset(
    "there it it's its this that the i i'm we these they those he she image scan".split()
)


def _alternation(patterns: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"(?<![\w'])(?:" + "|".join(patterns) + r")(?![\w'])")


# Doubt about the answer itself: wherever it stands, it withdraws the answer unless an
# explicit verdict follows ("... difficult to definitively determine ... Therefore, the
# answer is no." commits to no). MedGemma's "difficult to definitively determine" and
# LLaVA's "challenging to confidently determine" are the commonest real forms.
_CANNOT = r"(?:can ?not|can'?t|could ?n'?t|could not|unable to|not able to)"
# What a doubting "cannot" is about: "cannot determine", "cannot be definitively confirmed",
# "unable to provide a Yes or No answer". Other uses ("the image cannot be accurately
# represented") say nothing about the answer.
_KNOW_VERBS = (r"(?:determine|determined|say|tell|confirm|confirmed|assess|assessed|answer|provide|see|seen"
               r"|identify|identified|evaluate|evaluated|diagnose|diagnosed|conclude|concluded|know|comment"
               r"|rule|ruled|exclude|excluded|interpret|access|visuali[sz]e|visuali[sz]ed|detect|detected|appreciated"
               r"|be sure|be certain|help)")
STRONG_HEDGE = _alternation((
    _CANNOT + r"(?:\s+[\w-]+){0,3}?\s+" + _KNOW_VERBS, r"i\s+(?:can ?not|can'?t|am unable|am not able)",
    # "it is not possible to determine"; not "This is not possible within the myocardium" (a
    # denial: the finding cannot occur there)
    r"impossible to", r"not (?:be )?possible(?= to\b|\s*[.!;]?\s*$)",
    r"(?:difficult|hard|challenging) to", r"not (?:sure|certain|clear|conclusive|definitive)",
    r"unsure", r"uncertain\w*", r"unclear", r"inconclusive", r"indeterminate", r"equivocal",
    r"(?:don'?t|do not|does not|doesn'?t) know", r"sorry", r"apologi[sz]e\w*",
    r"insufficient", r"not enough", r"(?:do not|don'?t) have access", r"would need (?:more|additional|further)",
    r"neither", r"yes (?:or|and) no", r"no or yes",
))

# Qualifiers that withdraw an answer only in the sentence that gives it ("Yes, it might
# be a tumor" is no answer; "Yes, there is a mass. This could indicate ..." is). Trailing
# disclaimers ("consult a radiologist", "as a large language model, I can assist") are
# in this group for the same reason: they follow most real answers without retracting them.
SOFT_HEDGE = _alternation((
    r"possibl[ey]", r"perhaps", r"maybe", r"may", r"might",
    r"could(?: also)? (?:be|indicate|represent|suggest|potentially|possibly|mean|reflect|signify|point)",
    r"suggest\w*", r"potentially", r"presumabl[ey]", r"questionabl[ey]", r"borderline",
    r"consult\w*", r"seek", r"medical advice", r"(?:healthcare|medical|qualified) (?:professional|provider)\w*",
    r"definitive diagnosis", r"as an ai", r"language model", r"visual assistant",
    r"rule out", r"ruling out", r"to exclude", r"differential",
    r"not necessarily",  # "X is not necessarily pathologic": neither yes nor no
))
# Sentences about what a finding would look like, not about this image ("Fibrosis
# typically presents as ...", "no opacity that would suggest pneumonia"): they state no
# finding, so statements are not read from them.
CONDITIONAL_RE = _alternation((
    r"if", r"would", r"typically", r"usually", r"generally", r"often", r"can be", r"characteri[sz]ed",
    r"such as", r"e\.g", r"for example", r"hallmark", r"sign of", r"signs of (?:a|an)",
))

NEGATORS = frozenset(
    "no not isn't isnt aren't arent doesn't doesnt don't dont without nor neither absence absent free "
    "excluded excludes exclude ruled never none lack lacks lacking".split()
)
# Words that end a negation's reach: "no mass, but a nodule", "no effusion; however, ...".
NEGATION_BREAKERS = frozenset("but however although though yet except while whereas ;".split())
# The same words as a pattern that cuts a sentence into clauses (statements.py reads the
# unhedged clauses of a hedged sentence).
CLAUSE_BREAK_RE = re.compile(r"\b(?:" + "|".join(sorted(w for w in NEGATION_BREAKERS if w.isalpha())) + r")\b|;")
NEGATION_WINDOW = 8
# "and" between a negation and a mention leaves its reach unclear ("no hemorrhage and a
# tumor is present"); "or" and commas continue it ("no evidence of pneumothorax, effusion,
# or pneumonia") unless the mention has a verb of its own ("no hemorrhage, a tumor is present").
COORDINATORS = frozenset({"and", "plus", "with", "whereas"})
LIST_MARKS = frozenset({"or", ","})
AFFIRMED_AFTER_RE = re.compile(r"^\s*(?:is|are|was|were|has been|have been)\s+(?:\w+\s+)?"
                               r"(?:present|seen|noted|visible|identified|evident|detected|shown)\b")
# A negation after the name: "X is not present", "Tumor absent", "X was ruled out".
# A gloss in brackets may stand between: "cardiomegaly (enlarged heart) is not apparent".
POST_NEGATION_RE = re.compile(
    r"^(?:\s*\([^()]*\))?(?:[\s:,\-]*(?:(?:is|are|was|were|has been|have been|appears?|seems?|does|do)\s+)?"
    r"(?:not\b|absent\b|ruled out\b|excluded\b|negative\b)|\s*(?:is|are|was|were)n'?t\b)"
)

# Generic words for "something abnormal": their denial denies every finding.
ABNORMALITY_WORDS = ("abnormalities", "abnormality", "abnormal findings", "significant findings",
                     "pathology", "pathologies", "abnormal")
# Findings that contradict a claim of normality ("The image appears normal. There is a
# small nodule." is not a clear no to "Is there an abnormality?").
FINDING_NOUNS = (
    "mass", "masses", "lesion", "lesions", "nodule", "nodules", "opacity", "opacities", "opacification",
    "effusion", "effusions", "fracture", "fractures", "tumor", "tumors", "tumour", "tumours", "hemorrhage",
    "haemorrhage", "bleeding", "consolidation", "consolidations", "infiltrate", "infiltrates", "infiltration",
    "edema", "oedema", "pneumothorax", "pneumonia", "atelectasis", "cardiomegaly", "enlargement", "enlarged",
    "swelling", "cyst", "cysts", "thickening", "collapse", "metastasis", "metastases", "carcinoma",
    "malignancy", "abscess", "infarct", "infarction", "stenosis", "obstruction", "dilation", "dilatation",
    "calcification", "calcifications", "shift", "deviation", "free air", "air-fluid level", "hydronephrosis",
)
# Subjects that make "appears normal" a statement about the whole study.
GLOBAL_SUBJECTS = frozenset(
    "image images scan scans study studies x-ray x-rays xray radiograph radiographs film films ct mri mr "
    "examination exam picture findings it this everything appearance".split()
)
NORMAL_WORDS = r"(?:normal|unremarkable|healthy|within normal limits)"
NORMAL_STATEMENT_RE = re.compile(
    r"\b(?:appears?|appear to|is|are|looks?|seems?|remains?)\s+(?:to be\s+|to have\s+|grossly\s+|completely\s+"
    r"|entirely\s+|relatively\s+|essentially\s+|otherwise\s+|overall\s+|a\s+|an\s+)*" + NORMAL_WORDS + r"\b"
    r"|\bno (?:significant |visible |obvious |acute |apparent )*(?:abnormalit(?:y|ies)|findings)\b"
    r"|\b(?:normal|unremarkable|healthy) (?P<obj>[\w\-]+(?:\s[\w\-]+)?)"
)
GENERIC_NORMAL_NAMES = frozenset({"normal", "healthy", "unremarkable", "no finding", "no findings"})

# An explicit verdict: "Therefore, the answer is **no**", "So the answer is yes.",
# "the final answer is: yes". It is the model's last word, so it decides.
VERDICT_RE = re.compile(
    r"(?:^|[\s,;:(])(?:(?:my|the)\s+)?(?:final\s+|short\s+|correct\s+)?answer\s+(?:is|would be|will be|:)\s*:?\s*"
    r"(yes|no)(?![\w'])(?!\s*(?:or|and|/)\s*(?:yes|no)(?![\w']))"
    r"|^(?:so|therefore|thus|hence|in conclusion|in summary|overall),?\s+(yes|no)(?![\w'])"
)

# Echoes of the answer instruction carry no answer ("Please choose from the following
# two options: [yes, no]", LLaVA-Med v1.0's habit).
ECHO_RE = re.compile(
    r"please\s+(?:choose|select)\s+(?:one\s+)?(?:from|of)\s+the\s+following(?:\s+two)?\s+options:?\s*"
    r"(?:\[[^\]\n]*\]|\([^)\n]*\))?\s*\.?"
    # "This is a closed-ended question, so the answer must be yes or no. The answer is yes."
    # (Llama 3.2 Vision restating its instruction): talk about the answer's form, not doubt.
    r"|this\s+is\s+a\s+closed[\s-]?ended\s+question\.?"
    r"|(?:the\s+)?answer\s+(?:must|should|has\s+to|needs\s+to|can\s+only)\s+be\s+(?:either\s+)?(?:a\s+)?yes\s+or\s+no\.?"
    r"|answer\s+with\s+(?:only\s+|just\s+)?(?:a\s+)?yes\s+or\s+no\.?"
    r"|(?:the\s+question\s+)?(?:is\s+)?asking\s+for\s+a\s+yes\s+or\s+no\s+answer"
)
# Lead-ins that carry no answer: "Answer:", "The final answer is", "Assistant:",
# "Human:" (LLaVA-Med v1.0 often continues as if it were the next turn).
PREFIX_RE = re.compile(
    r"^[\s\W]*?(?:(?:(?:the|my)\s+)?(?:final\s+|correct\s+|short\s+)?"
    r"(?:answer|option|choice|response|reply|output|prediction|diagnosis)(?![\w'])(?:\s+is)?\s*[:=\-]?"
    r"|(?:assistant|model|human|gpt)\s*:)\s*"
)
SENTENCE_SPLIT_RE = re.compile(r"\n+|(?<=[.!?])\s+")
TOKEN_RE = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*|[^\w\s]")


def normalize(text: object) -> str:
    """Casefold and strip decoration (markdown, quotes, odd spacing) that carries no answer.

    Newlines are kept (collapsed to one): a line break ends a sentence ("Yes\\n\\nThe image
    shows ...", "... appears to be thickened.\\nSo the answer is yes.").
    """
    if not isinstance(text, str):
        return ""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    s = re.sub(r"[*_~#>\"\u201c\u201d]", " ", s)
    s = re.sub(r"(?<![^\W_])'|'(?![^\W_])", " ", s)  # quotes, keeping "don't"
    s = re.sub(r"[^\S\n]+", " ", s)
    s = re.sub(r" ?\n[\s]*", "\n", s)
    return s.strip()


def strip_prefix(s: str) -> str:
    """Drop answer lead-ins ("Answer:", "The answer is") so the real answer leads."""
    while True:
        m = PREFIX_RE.match(s)
        if not m or m.end() == 0:  # every lead-in holds a word, so the loop always shrinks s
            return s
        s = s[m.end():]


def sentences(s: str) -> list[str]:
    """The sentences of a normalized answer, echoes of the answer instruction removed."""
    s = ECHO_RE.sub("\n", s)  # an echo ends a sentence: "... must be yes or no. Yes."
    out = []
    for part in SENTENCE_SPLIT_RE.split(s):
        part = strip_prefix(part.strip())
        if part and re.search(r"[^\W_]", part):
            out.append(part)
    return out


def tokens(s: str) -> list[str]:
    return TOKEN_RE.findall(s)


def is_word(tok: Optional[str]) -> bool:
    return tok is not None and tok[0].isalnum()


def yes_no_word(tok: Optional[str]) -> Optional[str]:
    if tok in YES:
        return "yes"
    if tok in NO:
        return "no"
    return None


def asserts(sent: str) -> bool:
    """Questions, requests ("Please evaluate ...") and "presence or absence of X" state nothing."""
    return not (sent.endswith("?") or sent.startswith("please ") or "presence or absence" in sent
                or "presence or the absence" in sent)


def strong_hedged(s: str) -> bool:
    return STRONG_HEDGE.search(s) is not None


def hedged(s: str) -> bool:
    """Any hedge, strong or soft: the test for the sentence that carries the answer."""
    return STRONG_HEDGE.search(s) is not None or SOFT_HEDGE.search(s) is not None


@lru_cache(maxsize=4096)
def name_pattern(name: str) -> Optional[re.Pattern]:
    """A pattern for a class or finding name: articles, plural -s/-es and the spelling of
    separators ("pleural_thickening", "air-fluid level", "pseudo-aneurysm") do not matter.
    A compound name also matches its head noun put first with "of"/"in" ("right rib fracture":
    "a fracture of the right rib"; "lung opacity": "opacity in the left lung" does not, the
    words between must be the name's own)."""
    name = re.sub(r"^(?:(?:a|an|the)\s+)+", "", normalize(name)).strip()
    words = [w for w in re.split(r"[\s_\-]+", name) if w]
    if not words:
        return None
    body = r"[\s_\-]+".join(re.escape(w) for w in words)
    if 2 <= len(words) <= 3 and words[0] != "no" and not set(words) & _NAME_LINKS:
        head, modifiers = re.escape(words[-1]), r"[\s_\-]+".join(re.escape(w) for w in words[:-1])
        body = rf"(?:{body}|{head}(?:e?s)?\s+(?:of|in|on|at|within|involving)\s+(?:(?:the|a|an)\s+)?{modifiers})"
    return re.compile(r"(?<![\w'-])" + body + r"(?:e?s)?(?![\w'-])")


# Words that make a name a phrase already ("replacement of the cervix by ..."): not reordered.
_NAME_LINKS = frozenset("of in on at by with within involving and or to from".split())


# ---------------------------------------------------------------- option choice (parse_choice)

# Lead-ins before a class or option name: "It is benign", "The image shows a tumor".
FILLER_RE = re.compile(
    r"^(?:(?:it|this|that)(?:\s+is|'s)|(?:the\s+)?(?:image|scan|lesion|tissue)\s+(?:is|shows)"
    r"|i\s+(?:choose|pick|select)|there\s+(?:is|are))\s+"
)
ARTICLE_RE = re.compile(r"^(?:(?:a|an|the)\s+)+")
# Words after a class name that keep it the whole answer: "Pneumonia detected."
TRAILING_RE = re.compile(r"\s+(?:is\s+)?(?:present|detected|seen|visible|identified|noted)$")
LETTER_RE = re.compile(
    r"\(\s*([ab])\s*\)|\[\s*([ab])\s*\]|(?<![\w'(\[])([ab])\)"
    r"|(?<![\w'])(?:option|choice|letter|choose|select|pick)\s*:?\s*\(?([ab])(?![\w'])"
)
BOTH_LETTERS_RE = re.compile(r"(?<![\w'])\(?[ab]\)?\s*(?:and|or|&|/|,)\s*\(?[ab]\)?(?![\w'])")
CLAUSE_SPLIT_RE = re.compile(r"[.,;:!?()\[\]{}/\n|]|\s-+\s|\s*—\s*")
WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")
MENTION_NEGATORS = frozenset(
    "not isn't isnt no without than nor neither exclude excluded excludes ruled absence".split()
)
# Words that follow a letter but never the article: "A is correct", "B would fit".
LETTER_FOLLOWERS = frozenset("is was would seems appears fits matches".split())
