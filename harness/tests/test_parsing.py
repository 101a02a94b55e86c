"""Tests of the deterministic answer parser: tricky examples and invariance properties.

The measurement on real model answers is in test_parsing_corpus.py; the examples here pin
the decisions of harness/answers/parsing.py one by one.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.core import PromptVariant, TaskSpec
from harness.answers.parsing import PARSER_VERSION, parse_answer, parse_choice, parse_yes_no


def _task(key: str, positive: str, negative: str) -> TaskSpec:
    return TaskSpec(key=key, title=key, modality="image", disease=f"a {positive}", positive_name=positive,
                    negative_name=negative, difficulty=1, hints="", positive_aliases=("yes", "1"),
                    negative_aliases=("no", "0"))


TASKS = {
    "brain": _task("brain", "tumor", "no tumor"),
    "pneumonia": _task("pneumonia", "pneumonia", "normal"),
    "skin": _task("skin", "malignant", "benign"),
    "histo": _task("histo", "invasive ductal carcinoma", "no invasive ductal carcinoma"),
}
ABNORMAL = PromptVariant("abnormal", "Is this {modality} abnormal?", "yes_no", yes_means="positive")
NORMAL = PromptVariant("normal", "Is this {modality} normal?", "yes_no", yes_means="negative")
DISEASE = PromptVariant("disease", "Does this {modality} show {disease}?", "yes_no", yes_means="positive")
CHOICE_PN = PromptVariant("ab", "A) {option_a} B) {option_b}", "choice", options=("positive", "negative"))
CHOICE_NP = PromptVariant("ba", "A) {option_a} B) {option_b}", "choice", options=("negative", "positive"))

task_keys = st.sampled_from(sorted(TASKS))


def test_parser_version_is_an_int():
    # 2: issue 11, hedges judged per sentence, verdicts and statements read; 3: issue 21, what a hedge
    # is about, the question's claim stated back; 4: issue 21 round 2, talk about the answer's form,
    # "X cannot be seen" after a no, replies to an offer, compound names reordered, hedges per clause
    assert PARSER_VERSION == 4


# ---------------------------------------------------------------- tricky examples

YES_NO_CASES = [
    ("Yes", "yes"), ("No", "no"), ("yes.", "yes"), ("NO!", "no"), ("**Yes**", "yes"), ("__no__", "no"),
    ("  \n\tYes", "yes"), ('"Yes"', "yes"), ("\u201cNo.\u201d", "no"), ("'yes'", "yes"),
    ("Yes, there is a lesion in the left lobe.", "yes"),
    ("No, there is no tumor.", "no"),
    ("No there is no tumor", "no"),
    ("Yes, there is no sign of normal tissue.", "yes"),
    ("Answer: No", "no"), ("The answer is yes.", "yes"), ("Final answer: YES", "yes"),
    ("Assistant: no", "no"), ("Based on the image, yes.", "yes"), ("Is there a tumor? Yes.", "yes"),
    ("yes yes", "yes"), ("nope", "no"), ("Nope.", "no"), ("nah", "no"), ("Yeah", "yes"), ("yep!", "yes"),
    ("Yes, probably.", "yes"), ("I could see a lesion. Yes.", "yes"),  # "probably" commits to an answer
    ("Yes... no", None), ("Yes. No.", None), ("yes no", None), ("yes/no", None), ("No, yes", None),
    ("Yes and no", None), ("Either yes or no.", None),
    ("Yes, but not certain", None),  # a hedge in the sentence that gives the answer withdraws it
    # Changed in parser 2 (issue 11): advice to consult someone, in a sentence of its own,
    # follows most real MedGemma/LLaVA answers without retracting them; it was None.
    ("No. Please consult a radiologist.", "no"), ("I cannot determine this from the image.", None),
    ("I can't tell", None), ("I am unable to provide a diagnosis.", None), ("Not sure", None),
    ("Uncertain", None), ("It is difficult to say.", None), ("As an AI, I cannot diagnose.", None),
    ("I'm sorry, but I can't help with that.", None), ("Possibly yes", None), ("Maybe", None),
    ("It may or may not be.", None), ("Yes, it might be a tumor.", None),
    ("Y", None), ("N", None), ("yesterday", None), ("nodule", None), ("I know", None), ("note", None),
    ("none", None), ("noyes", None), ("No tumor", None),  # determiner "no": not an answer without the question
    ("No abnormality detected.", None), ("There is no tumor.", None), ("Positive", None), ("negative", None),
    ("", None), ("   ", None), ("\u0120qx zz lesion lesion", None), ("\u0120yes", None), ("...", None),
    # parser 2 (issue 11): verdicts, hedges per sentence, doubt about the answer itself
    ("Based on the image, the stomach wall appears to be thickened.\nSo the answer is yes.\n", "yes"),
    ("It is difficult to definitively determine if there is a thickened wall.\n\nTherefore, the answer is **no**.",
     "no"),  # the verdict settles the deliberation before it
    ("Based on the provided chest X-ray, the answer is **no**.\n\nThe image shows a central line.", "no"),
    ("Therefore, the answer is", None), ("Therefore, the answer is **no", "no"),  # cut off before / inside the bold
    ("Yes.\n\nThe CT scan shows a large cystic lesion. These findings are abnormal.", "yes"),
    ("Yes, there appears to be a large mass in the right upper quadrant. This could indicate a tumor.", "yes"),
    ("Yes, there appears to be a large cystic structure, which could be a renal cyst.", None),
    ("Yes, atelectasis is present. Further evaluation may be needed.", "yes"),
    ("Based on the provided CT scan images, **no**, walled-off necrosis is not clearly visible.", "no"),
    ("It is difficult to definitively determine the presence of a mass. However, there are findings that", None),
    ("I cannot definitively answer \"yes\" or \"no\"", None), ("Yes. I am not sure.", None),
    ("I am not sure. Yes.", None), ("Yes. So the answer is no.", None),
    ("Therefore, the answer is yes. However, I cannot be certain.", None),
    ("Human: Yes, there is airspace consolidation on the left side.", "yes"),  # LLaVA-Med v1.0 turn artefact
    ("Human: The hemidiaphragms are flattened. Please choose from the following two options: [Yes, No]", None),
    ("Yes, as a large language model, I can assist.", None), ("Yes.\nAs an AI, I can assist further.", "yes"),
]


@pytest.mark.parametrize("text, expected", YES_NO_CASES)
def test_parse_yes_no_examples(text, expected):
    assert parse_yes_no(text) == expected


CHOICE_CASES = [
    ("A", "tumor", "no tumor", "A"), ("A)", "tumor", "no tumor", "A"), ("(A)", "tumor", "no tumor", "A"),
    ("A.", "tumor", "no tumor", "A"), ("[B]", "tumor", "no tumor", "B"), ("Option A", "tumor", "no tumor", "A"),
    ("option: b", "tumor", "no tumor", "B"), ("answer: B", "malignant", "benign", "B"),
    ("The answer is (B) benign", "malignant", "benign", "B"), ("B: benign", "malignant", "benign", "B"),
    ("B no tumor", "tumor", "no tumor", "B"), ("Based on the image, B.", "malignant", "benign", "B"),
    ("I choose A", "malignant", "benign", "A"), ("**B**", "malignant", "benign", "B"),
    ("benign", "malignant", "benign", "B"), ("Malignant.", "malignant", "benign", "A"),
    ("It is benign.", "malignant", "benign", "B"), ("Benign, not malignant.", "malignant", "benign", "B"),
    ("Malignant. Benign lesions are usually symmetric.", "malignant", "benign", "A"),
    ("B. Malignant lesions usually show asymmetry.", "malignant", "benign", "B"),
    # option texts that contain each other
    ("no tumor", "tumor", "no tumor", "B"), ("tumor", "tumor", "no tumor", "A"),
    ("No tumor.", "tumor", "no tumor", "B"), ("Tumor", "no tumor", "tumor", "B"),
    ("There is no tumor.", "tumor", "no tumor", "B"), ("There is a tumor.", "tumor", "no tumor", "A"),
    ("A tumor is visible.", "tumor", "no tumor", "A"),  # article, not option A
    ("A tumor is visible.", "no tumor", "tumor", "B"),
    ("The answer is a tumor.", "no tumor", "tumor", "B"),
    ("Invasive ductal carcinoma", "invasive ductal carcinoma", "no invasive ductal carcinoma", "A"),
    ("No invasive ductal carcinoma.", "invasive ductal carcinoma", "no invasive ductal carcinoma", "B"),
    ("Pneumonia", "normal", "pneumonia", "B"),
    # both, neither, hedges
    ("A or B", "tumor", "no tumor", None), ("A/B", "tumor", "no tumor", None), ("A and B", "x", "y", None),
    ("(A) tumor (B) no tumor", "tumor", "no tumor", None), ("B) malignant", "malignant", "benign", None),
    ("Malignant or benign", "malignant", "benign", None), ("Both", "malignant", "benign", None),
    ("Neither", "malignant", "benign", None), ("Possibly A", "malignant", "benign", None),
    ("I cannot determine.", "malignant", "benign", None), ("Yes", "malignant", "benign", None),
    ("C", "malignant", "benign", None), ("", "malignant", "benign", None),
    ("Not malignant", "malignant", "benign", None), ("\u0120qx zz lesion lesion", "tumor", "no tumor", None),
    ("answers", "malignant", "benign", None), ("A. tumor\nB. no tumor", "tumor", "no tumor", None),
    ("A is correct.", "malignant", "benign", "A"), ("The correct option is B", "malignant", "benign", "B"),
    ("The answer is B. no tumor", "tumor", "no tumor", "B"),
]


@pytest.mark.parametrize("text, option_a, option_b, expected", CHOICE_CASES)
def test_parse_choice_examples(text, option_a, option_b, expected):
    assert parse_choice(text, option_a, option_b) == expected


ANSWER_CASES = [
    ("Yes", ABNORMAL, "brain", "positive"), ("No", ABNORMAL, "brain", "negative"),
    ("Yes", NORMAL, "pneumonia", "negative"), ("No.", NORMAL, "pneumonia", "positive"),
    ("Pneumonia.", ABNORMAL, "pneumonia", "positive"), ("Pneumonia.", NORMAL, "pneumonia", "positive"),
    ("Normal", NORMAL, "pneumonia", "negative"), ("No tumor", NORMAL, "brain", "negative"),
    ("No tumor", ABNORMAL, "brain", "negative"), ("Tumor detected.", NORMAL, "brain", "positive"),
    ("No pneumonia.", NORMAL, "pneumonia", "negative"), ("No evidence of a tumor", NORMAL, "brain", "negative"),
    ("There is no pneumonia.", ABNORMAL, "pneumonia", "negative"),
    ("Benign", ABNORMAL, "skin", "negative"), ("It is malignant.", NORMAL, "skin", "positive"),
    ("No invasive ductal carcinoma", NORMAL, "histo", "negative"),
    ("Invasive ductal carcinoma.", NORMAL, "histo", "positive"),
    ("Tumor? No.", ABNORMAL, "brain", "refused"),  # the class name and the answer word disagree
    ("Yes, pneumonia.", ABNORMAL, "pneumonia", "positive"),
    # Changed in parser 2 (issue 11): "No abnormality" denies every finding, so it answers
    # "Is this image normal?" as normal (negative) in any polarity; it was refused.
    ("No abnormality", NORMAL, "brain", "negative"), ("Pneumonia or normal", ABNORMAL, "pneumonia", "refused"),
    ("Yes, possibly pneumonia", ABNORMAL, "pneumonia", "refused"), ("B", ABNORMAL, "brain", "refused"),
    ("A", CHOICE_PN, "skin", "positive"), ("A", CHOICE_NP, "skin", "negative"),
    ("benign", CHOICE_PN, "skin", "negative"), ("benign", CHOICE_NP, "skin", "negative"),
    ("(B) no tumor", CHOICE_PN, "brain", "negative"), ("(B) tumor", CHOICE_NP, "brain", "positive"),
    ("(B) tumor", CHOICE_PN, "brain", "refused"), ("Yes", CHOICE_PN, "brain", "refused"),
    ("", ABNORMAL, "brain", "refused"), ("   ", CHOICE_PN, "brain", "refused"),
    ("\u0120qx zz lesion lesion", ABNORMAL, "brain", "refused"),
    # parser 2 (issue 11): statements without a yes/no word, read as a careful person does
    ("There is no evidence of a brain tumor.", ABNORMAL, "brain", "negative"),
    ("There is no evidence of a brain tumor.", NORMAL, "brain", "negative"),  # a statement keeps its label
    ("Based on the chest x-ray provided, there are **no obvious signs of pneumonia**.", DISEASE, "pneumonia",
     "negative"),
    ("Cardiomegaly is not apparent. The heart size appears within normal limits.", DISEASE, "pneumonia", "refused"),
    ("The chest x-ray appears to be normal.", ABNORMAL, "pneumonia", "negative"),
    ("The chest x-ray appears to be unremarkable.", NORMAL, "pneumonia", "negative"),
    ("The brain appears normal.", ABNORMAL, "brain", "refused"),  # this task names no brain (see below)
    ("The lungs appear clear.", ABNORMAL, "pneumonia", "refused"),  # said of a part, not the study
    ("The image appears normal, but there is a small nodule.", ABNORMAL, "brain", "refused"),
    ("There is no evidence of a brain tumor. There is a large hemorrhage.", ABNORMAL, "brain", "refused"),
    ("There is no evidence of a brain tumor. There is a large hemorrhage.", DISEASE, "brain", "negative"),
    ("The MRI shows a large tumor in the left frontal lobe.", DISEASE, "brain", "positive"),
    ("The MRI shows a large tumor in the left frontal lobe.", NORMAL, "brain", "positive"),
    ("It could be a tumor.", DISEASE, "brain", "refused"), ("If there were a tumor, it would be bright.", DISEASE,
                                                             "brain", "refused"),
    ("The lesion appears benign.", DISEASE, "skin", "negative"), ("The lesion is not malignant.", DISEASE, "skin",
                                                                  "negative"),
    ("Tumor absent.", DISEASE, "brain", "negative"), ("Tumor: not seen.", DISEASE, "brain", "refused"),
    ("There is no hemorrhage and a tumor is present.", DISEASE, "brain", "refused"),
    ("There is no hemorrhage, but a tumor is present.", DISEASE, "brain", "positive"),
    ("There is no evidence of pneumothorax, pleural effusion, or pneumonia.", DISEASE, "pneumonia", "negative"),
    ("The lungs are clear, with no opacity that would suggest pneumonia.", DISEASE, "pneumonia", "refused"),
    ("Further evaluation is needed to rule out pneumonia.", DISEASE, "pneumonia", "refused"),
    ("Please evaluate the image for the presence or absence of a tumor.", DISEASE, "brain", "refused"),
    ("The answer is yes.", NORMAL, "brain", "negative"), ("So the answer is no.", DISEASE, "brain", "negative"),
    ("Based on the image, there appears to be a", ABNORMAL, "brain", "refused"),  # cut off by the token cap
    ("The image shows a brain MRI scan with a", ABNORMAL, "brain", "refused"),
    ("No, there is no tumor. So the answer is yes.", DISEASE, "brain", "refused"),
    ("It is difficult to definitively determine whether a tumor is present.", DISEASE, "brain", "refused"),
]


@pytest.mark.parametrize("text, variant, task, expected", ANSWER_CASES)
def test_parse_answer_examples(text, variant, task, expected):
    assert parse_answer(text, variant, TASKS[task]) == expected


def test_normal_statement_about_the_organ_the_task_names():
    """"The brain appears normal" answers for the study only when the task is about the brain
    (fixtures/tasks.toml: modality "brain MRI", disease "a brain tumor")."""
    task = TaskSpec(key="brain_tumor", title="b", modality="brain MRI", disease="a brain tumor", positive_name="tumor",
                    negative_name="no tumor", difficulty=1, hints="")
    assert parse_answer("The brain appears normal.", ABNORMAL, task) == "negative"
    assert parse_answer("The brain appears normal.", NORMAL, task) == "negative"
    assert parse_answer("The liver appears normal.", ABNORMAL, task) == "refused"


def test_non_string_text_is_refused():
    assert parse_yes_no(None) is None  # type: ignore[arg-type]
    assert parse_choice(None, "a", "b") is None  # type: ignore[arg-type]
    assert parse_answer(None, ABNORMAL, TASKS["brain"]) == "refused"  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties

def _decorate(text: str, case: str, period: str, bold: bool, pad: tuple[str, str]) -> str:
    text = {"lower": text.lower(), "upper": text.upper(), "title": text.title(), "keep": text}[case]
    text += period
    if bold:
        text = f"**{text}**"
    return pad[0] + text + pad[1]


decorations = st.tuples(
    st.sampled_from(["lower", "upper", "title", "keep"]),
    st.sampled_from(["", ".", "!", "..."]),
    st.booleans(),
    st.tuples(st.sampled_from(["", " ", "\n", " \t "]), st.sampled_from(["", " ", "\n"])),
)
EXPLANATIONS = ["", ", based on the image", ". The findings are described above", " - see the left side"]


@settings(max_examples=150, deadline=None)
@given(word=st.sampled_from(["yes", "no", "Yes", "No"]), deco=decorations)
def test_decorations_keep_yes_no(word, deco):
    assert parse_yes_no(_decorate(word, *deco)) == word.lower()


@settings(max_examples=150, deadline=None)
@given(key=task_keys, pick=st.sampled_from(["A", "B", "text_a", "text_b"]), deco=decorations)
def test_decorations_keep_choice(key, pick, deco):
    a, b = TASKS[key].positive_name, TASKS[key].negative_name
    canonical = {"A": "A", "B": "B", "text_a": a, "text_b": b}[pick]
    assert parse_choice(_decorate(canonical, *deco), a, b) == pick[-1].upper()


CHOICE_TEMPLATES = ["{L}", "{L})", "({L})", "{L}.", "Option {L}", "answer: {L}", "The answer is ({L}) {T}",
                    "{L}: {T}", "{T}", "{T}.", "It is {T}", "**{T}**", "I choose {L}", "{L} - {T}"]


@settings(max_examples=200, deadline=None)
@given(key=task_keys, template=st.sampled_from(CHOICE_TEMPLATES), label=st.sampled_from(["positive", "negative"]),
       tail=st.sampled_from(EXPLANATIONS), deco=decorations)
def test_swapping_option_order_and_letter_keeps_label(key, template, label, tail, deco):
    task = TASKS[key]
    names = {"positive": task.positive_name, "negative": task.negative_name}
    letter_pn = "A" if label == "positive" else "B"
    letter_np = "B" if letter_pn == "A" else "A"
    text_pn = _decorate(template.format(L=letter_pn, T=names[label]) + tail, *deco)
    text_np = _decorate(template.format(L=letter_np, T=names[label]) + tail, *deco)
    assert parse_answer(text_pn, CHOICE_PN, task) == parse_answer(text_np, CHOICE_NP, task) == label


VOCAB = ["tumor", "no tumor", "malignant", "benign", "pneumonia", "normal", "invasive ductal carcinoma",
         "no invasive ductal carcinoma", "not", "there is", "the", "lesion", "yes", "no", "answer:", ",", ".",
         "(", ")", "it is", "rather than", "visible", "\n"]


@settings(max_examples=200, deadline=None)
@given(key=task_keys, words=st.lists(st.sampled_from(VOCAB), max_size=8))
def test_letter_free_answers_do_not_depend_on_option_order(key, words):
    """Without option letters, only the class names speak, and they map the same in both orders."""
    text = " ".join(words)
    task = TASKS[key]
    assert parse_answer(text, CHOICE_PN, task) == parse_answer(text, CHOICE_NP, task)


YES_NO_TEMPLATES = ["{W}", "{W}.", "**{W}**", "Answer: {W}", "The answer is {W}.", "{W}, based on the image.",
                    "Based on the image, {W}.", "{W}!", "'{W}'", "{W}, I see a lesion."]


@settings(max_examples=200, deadline=None)
@given(key=task_keys, template=st.sampled_from(YES_NO_TEMPLATES), answer=st.sampled_from(["yes", "no"]),
       tail=st.sampled_from(EXPLANATIONS), deco=decorations)
def test_flipping_polarity_and_answer_keeps_label(key, template, answer, tail, deco):
    task = TASKS[key]
    flipped = "no" if answer == "yes" else "yes"
    text = _decorate(template.format(W=answer) + tail, *deco)
    text_flipped = _decorate(template.format(W=flipped) + tail, *deco)
    label = parse_answer(text, ABNORMAL, task)
    assert label == ("positive" if answer == "yes" else "negative")
    assert parse_answer(text_flipped, NORMAL, task) == label


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), key=task_keys,
       variant=st.sampled_from([ABNORMAL, NORMAL, CHOICE_PN, CHOICE_NP]))
def test_arbitrary_text_never_crashes(text, key, variant):
    assert parse_answer(text, variant, TASKS[key]) in ("positive", "negative", "refused")
    assert parse_yes_no(text) in ("yes", "no", None)
    assert parse_choice(text, TASKS[key].positive_name, TASKS[key].negative_name) in ("A", "B", None)


# Changed in parser 2 (issue 11): "a hedge anywhere refuses" no longer holds, since trailing
# hedges in a sentence of their own only explain (the commonest error on real answers).
# What holds instead: doubt about the answer refuses wherever it stands unless a verdict
# follows it, and any hedge in the sentence that gives the answer refuses.
DOUBTS = ["I am not sure. ", "It is difficult to definitively determine this. ", "I cannot determine this. ",
          "I'm sorry, I can't tell from this image. "]


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60), key=task_keys, doubt=st.sampled_from(DOUBTS))
def test_doubt_is_always_refused(text, key, doubt):
    assume(re.search(r"answer|so|therefore|thus|hence|conclusion|summary|overall", text, re.IGNORECASE) is None)
    assert parse_answer(doubt + text, ABNORMAL, TASKS[key]) == "refused"
    assert parse_answer(text + " " + doubt, CHOICE_PN, TASKS[key]) == "refused"
    assert parse_answer(text + "\n" + doubt, NORMAL, TASKS[key]) == "refused"


HEDGES = ["possibly", "probably not certain but", "it may be that", "it might be", "maybe", "perhaps",
          "it could be", "suggestive of", "I am not sure, but", "it is difficult to say, but"]
ANSWER_SENTENCES = ["{W}, {H} there is a lesion", "{H} {W}", "{W}, {H}", "{W}, there is a lesion, {H} a tumor",
                    "Based on the image, {W}, {H} it is visible"]
TAILS = ["", ". The findings are described above.", ".\n\nThe heart is normal in size.", ". Please consult a doctor."]


@settings(max_examples=200, deadline=None)
@given(key=task_keys, template=st.sampled_from(ANSWER_SENTENCES), hedge=st.sampled_from(HEDGES),
       word=st.sampled_from(["yes", "no", "Yes", "No"]), tail=st.sampled_from(TAILS),
       variant=st.sampled_from([ABNORMAL, NORMAL, DISEASE]))
def test_hedge_in_the_answer_sentence_always_refuses(key, template, hedge, word, tail, variant):
    text = template.format(W=word, H=hedge) + tail
    assert parse_yes_no(text) is None
    assert parse_answer(text, variant, TASKS[key]) == "refused"


@settings(max_examples=200, deadline=None)
@given(key=task_keys, word=st.sampled_from(["Yes", "No"]), lead=st.sampled_from(["", "Based on the image, "]),
       tail=st.sampled_from(["This could indicate an infection.", "Further evaluation may be needed.",
                             "Please consult a radiologist.", "It might require follow-up."]))
def test_hedge_in_a_later_sentence_keeps_the_answer(key, word, lead, tail):
    text = f"{lead}{word}, the image shows the finding in question.\n\n{tail}"
    assert parse_yes_no(text) == word.lower()
    label = "positive" if word == "Yes" else "negative"
    assert parse_answer(text, ABNORMAL, TASKS[key]) == label


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300), key=task_keys,
       variant=st.sampled_from([ABNORMAL, NORMAL, DISEASE, CHOICE_PN, CHOICE_NP]))
def test_parser_never_raises(text, key, variant):
    assert parse_answer(text, variant, TASKS[key]) in ("positive", "negative", "refused")
    assert parse_yes_no(text) in ("yes", "no", None)


# ---- issue 21: answers read as a clinician reads them --------------------------------
# Kind 1: a committed answer followed by a caveat about something else (its cause, kind,
# details, a definitive diagnosis, an AI disclaimer) stays committed; a caveat about the
# finding asked, or a doubt about the answer itself, still withdraws it.
FINDINGS = [("a focal mass", "focal mass"), ("a skull fracture", "skull fracture"), ("pneumonia", "pneumonia"),
            ("a pleural effusion", "pleural effusion"), ("an obscured diaphragm", "obscured diaphragm")]
OTHER_CAVEATS = [
    ", which is a large, white and possibly cancerous lump.",
    ", making it difficult to see the entire structure.",
    ". However, the exact nature of the lesion cannot be determined solely from the image.",
    ". It is difficult to provide a definitive diagnosis without more information.",
    ". It's important to note that I am an AI and cannot provide medical diagnoses.",
    ". Further diagnostic tests would be necessary to determine its cause.",
    ". This could be due to an infection, inflammation or a tumor.",
]
ANSWER_DOUBTS = [
    ". However, it is difficult to determine whether there is {f} from this image.",
    ". I am not sure.",
    ", which could be {f}.",
]


def _finding_task(name: str) -> TaskSpec:
    return _task("finding", name, f"no {name}")


@settings(max_examples=200, deadline=None)
@given(finding=st.sampled_from(FINDINGS), word=st.sampled_from(["Yes", "No"]), caveat=st.sampled_from(OTHER_CAVEATS),
       polarity=st.sampled_from(["positive", "negative"]))
def test_a_caveat_about_something_else_keeps_the_answer(finding, word, caveat, polarity):
    article, name = finding
    variant = PromptVariant("q", f"Is there {article} in this image?", "yes_no", yes_means=polarity)
    verb = "there is" if word == "Yes" else "there is no"
    text = f"{word}, {verb} {name} in the image{caveat}"
    said = polarity if word == "Yes" else ("negative" if polarity == "positive" else "positive")
    assert parse_answer(text, variant, _finding_task(name)) == said


@settings(max_examples=150, deadline=None)
@given(finding=st.sampled_from(FINDINGS), word=st.sampled_from(["Yes", "No"]), doubt=st.sampled_from(ANSWER_DOUBTS))
def test_a_doubt_about_the_finding_asked_still_withdraws_the_answer(finding, word, doubt):
    article, name = finding
    variant = PromptVariant("q", f"Is there {article} in this image?", "yes_no", yes_means="positive")
    text = f"{word}, there is a shadow in the image{doubt.format(f=name)}"
    assert parse_answer(text, variant, _finding_task(name)) == "refused"


def test_without_the_finding_every_hedge_and_doubt_withdraws_as_before():
    text = "Yes, the diaphragm is obscured in the image, making it difficult to see the entire structure."
    assert parse_yes_no(text) is None
    task = _finding_task("obscured diaphragm")
    variant = PromptVariant("q", "Is the diaphragm obscured?", "yes_no", yes_means="positive")
    assert parse_answer(text, variant, task) == "positive"


# Kind 2: no yes or no, but the question's own claim stated back: read against the
# question's words (the rendered prompt), not only the task's class names.
ORGANS = ["liver", "brain", "right hemidiaphragm", "left kidney", "appendix"]
MODALITIES = ["CT scan", "MRI image", "chest X-ray", "image"]


@settings(max_examples=200, deadline=None)
@given(organ=st.sampled_from(ORGANS), modality=st.sampled_from(MODALITIES),
       verb=st.sampled_from(["appears to be", "is", "looks", "is considered"]))
def test_a_normality_claim_stated_back_reads_against_the_question(organ, modality, verb):
    task = _task("t", "abnormal", "normal")  # class names that never appear in the answers
    variant = PromptVariant("normal", f"Is the {organ} normal?", "yes_no", yes_means="negative")
    assert parse_answer(f"The {organ} {verb} normal in the {modality}.", variant, task) == "negative"
    assert parse_answer(f"The {organ} is not normal in the {modality}.", variant, task) == "positive"
    assert parse_answer(f"The {organ} {verb} normal, but there may be a lesion.", variant, task) == "refused"
    inverted = PromptVariant("abnormal", f"Is the {organ} abnormal?", "yes_no", yes_means="positive")
    assert parse_answer(f"The {organ} {verb} abnormal in the {modality}.", inverted, task) == "positive"


@settings(max_examples=200, deadline=None)
@given(part=st.sampled_from(["rib", "skull", "femur", "clavicle"]), modality=st.sampled_from(MODALITIES),
       lead=st.sampled_from(["", "Based on the image, ", "According to the image, "]))
def test_a_finding_stated_in_the_question_terms_is_read(part, modality, lead):
    task = _task("t", "fracture", "no fracture")
    variant = PromptVariant("q", f"Is there a {part} fracture?", "yes_no", yes_means="positive")
    assert parse_answer(f"{lead}the {modality} does not show any signs of a {part} fracture.", variant,
                        task) == "negative"
    assert parse_answer(f"{lead}there is no sign of a {part} fracture.", variant, task) == "negative"
    assert parse_answer(f"{lead}there is a fracture of the right {part}.", variant, task) == "positive"
    assert parse_answer(f"{lead}the {part}s are fractured in the {modality}.", variant, task) == "positive"
    # a request or a question that names the claim states nothing
    assert parse_answer(f"Please evaluate the {modality} for the presence or absence of a {part} fracture.",
                        variant, task) == "refused"


def test_the_question_words_leave_out_the_medium_and_function_words():
    from harness.answers.question import question_words

    assert question_words("In the given abdomen CT scan, is thickened stomach wall present?") == {
        "thicken", "stomach", "wall"}
    assert question_words("Are the temporal bones fractured? Answer with one word.") == {"temporal", "bon", "fractur"}
    assert question_words("Is this chest X-ray image normal?") == {"normal"}  # one word: left to the statements


# ---- issue 21, round 2 (parser 4): rules from the misses of round 1 ------------------
# Talk about the answer's form is no doubt: "This is a closed-ended question, so the answer
# must be yes or no. The answer is yes." (Llama 3.2 Vision restating its instruction).
FORM_TALK = ["This is a closed-ended question, so the answer must be yes or no.", "The answer should be yes or no.",
             "Answer with only yes or no.", "The question is asking for a yes or no answer."]


@settings(max_examples=150, deadline=None)
@given(word=st.sampled_from(["Yes", "No"]), talk=st.sampled_from(FORM_TALK), key=task_keys,
       verdict=st.booleans(), talk_first=st.booleans())
def test_talk_about_the_answer_form_is_not_a_doubt(word, talk, key, verdict, talk_first):
    body = f"{word}. The image shows the finding clearly." if word == "Yes" else f"{word}. The image is clear."
    parts = [talk, body] if talk_first else [body, talk]
    if verdict:
        parts.append(f"The answer is {word.lower()}.")
    expected = "positive" if word == "Yes" else "negative"
    assert parse_answer(" ".join(parts), DISEASE, TASKS[key]) == expected
    # a real doubt that names the form still withdraws
    assert parse_answer(f"{word}. I cannot answer yes or no from this image.", DISEASE, TASKS[key]) == "refused"


@pytest.mark.parametrize("text, expected", [
    ("This is not possible within the myocardium.", None),  # a claim of impossibility, not a doubt
    ("It is not possible to determine this.", "doubt"),
    ("That is not possible.", "doubt"),
    ("It may not be possible to tell.", "doubt"),
])
def test_not_possible_is_a_doubt_only_about_knowing(text, expected):
    from harness.answers.rules import normalize, strong_hedged

    assert strong_hedged(normalize(text)) == (expected == "doubt")


@settings(max_examples=150, deadline=None)
@given(finding=st.sampled_from(FINDINGS), verb=st.sampled_from(["seen", "identified", "visualized", "detected"]),
       medium=st.sampled_from(["by the ultrasound image", "in this CT scan", ""]))
def test_a_finding_that_cannot_be_seen_after_a_no_is_absent(finding, verb, medium):
    article, name = finding
    variant = PromptVariant("q", f"Is there {article}?", "yes_no", yes_means="positive")
    task = _finding_task(name)
    assert parse_answer(f"No, {name} cannot be {verb} {medium}.", variant, task) == "negative"
    # without a "no", or with a verb of knowing, it stays a doubt
    assert parse_answer(f"{name.capitalize()} cannot be {verb} {medium}.", variant, task) == "refused"
    assert parse_answer(f"No, {name} cannot be determined {medium}.", variant, task) == "refused"
    assert parse_answer(f"Yes, {name} cannot be {verb} {medium}.", variant, task) == "refused"


@pytest.mark.parametrize("text", ["Human: Yes, I would like to proceed with the chest X-ray.",
                                  "Yes, please provide the measurement in millimeters.",
                                  "No, thank you.", "Yes, I'd like to see the report."])
def test_a_reply_to_an_offer_is_no_answer(text):
    assert parse_yes_no(text) is None
    assert parse_answer(text, DISEASE, TASKS["brain"]) == "refused"


@pytest.mark.parametrize("name, text, found", [
    ("right rib fracture", "there is a fracture of the right rib", True),
    ("right rib fracture", "fractures of the right ribs are seen", True),
    ("skull fracture", "a fracture in the skull", True),
    ("lung opacity", "an opacity in the left lung", False),  # the words between must be the name's own
    ("rib fracture", "a fracture of the femur", False),
    ("replacement of the cervix by growth", "growth of the replacement", False),  # a phrase is not reordered
    ("no tumor", "tumor of the no", False),
])
def test_a_compound_name_matches_its_head_put_first(name, text, found):
    from harness.answers.rules import name_pattern

    assert (name_pattern(name).search(text) is not None) == found


@settings(max_examples=150, deadline=None)
@given(finding=st.sampled_from(FINDINGS), aside=st.sampled_from(
    ["possibly highlighting structures like blood vessels", "which may be a vessel", "perhaps a normal variant"]),
    joint=st.sampled_from(["but", "however,", "whereas"]))
def test_a_hedge_in_another_clause_leaves_a_plain_statement(finding, aside, joint):
    article, name = finding
    variant = PromptVariant("q", f"Does this image show {article}?", "yes_no", yes_means="positive")
    task = _finding_task(name)
    text = f"The image appears to be a micrograph of tissue, {aside}, {joint} it does not depict {name}."
    assert parse_answer(text, variant, task) == "negative"
    # the hedged clause itself is still not read: a guess at the finding is no statement
    assert parse_answer(f"The image shows tissue, {joint} it may show {name}.", variant, task) == "refused"


@settings(max_examples=150, deadline=None)
@given(finding=st.sampled_from(["cardiomegaly", "pneumothorax", "hydronephrosis", "pleural effusion"]),
       gloss=st.sampled_from(["(enlarged heart)", "(collapsed lung)", "(fluid)", "( see above )"]),
       tail=st.sampled_from(["is not apparent", "is not seen", "is absent", "isn't present", "was ruled out"]),
       lead=st.sampled_from(["In this image, ", "Based on the chest x-ray provided, "]))
def test_a_gloss_in_brackets_does_not_hide_a_denial(finding, gloss, tail, lead):
    # (a class name opening the answer and then denied, "Cardiomegaly: not seen", stays refused)
    # parser 3 read "cardiomegaly (enlarged heart) is not apparent" as a finding stated present:
    # the one opposite label of the round-2 held-out measurement
    variant = PromptVariant("q", f"Is {finding} present in the given chest x-ray?", "yes_no", yes_means="positive")
    task = _finding_task(finding)
    assert parse_answer(f"{lead}{finding} {gloss} {tail}.", variant, task) == "negative"
    assert parse_answer(f"{lead}{finding} {gloss} is present.", variant, task) == "positive"


# ---- from the parser's mutants (MUTANTS.md, "The answer parser"): each pins one decision --

def test_sentences_carry_words():
    from harness.answers.rules import normalize, sentences

    assert sentences(normalize("... \n Yes. , ;\n No")) == ["yes.", "no"]


@pytest.mark.parametrize("text, expected", [
    ("Do I see a mass, yes? No, there is no mass.", "no"),  # answer words inside a question are not answers
    ("It is difficult to determine. Therefore, no.", "no"),  # "Therefore, no." is a verdict: the last word
    ("No. It is difficult to be certain. So the answer is no.", "no"),  # doubts before the verdict are settled
    ("The image may show something. No, there is no tumor.", "no"),  # the hedge is not in the answer's sentence
    ("Yes, there is a shadow, which makes it difficult to say.", None),  # a trailing doubt about the answer
])
def test_where_the_answer_word_stands(text, expected):
    assert parse_yes_no(text, [re.compile("tumou?r")]) == expected


def test_parse_yes_no_judges_hedges_by_what_they_are_about_only_when_told():
    from harness.answers.rules import name_pattern

    text = "Yes, there is a mass, which could be malignant."
    assert parse_yes_no(text, [name_pattern("mass")]) == "yes"
    assert parse_yes_no(text) is None


def test_both_answer_words_are_not_overruled_by_a_statement():
    assert parse_answer("Yes... no. There is a tumor.", DISEASE, TASKS["brain"]) == "refused"


def test_without_an_answer_word_a_doubt_about_something_else_keeps_the_statement():
    task = _finding_task("mass")
    variant = PromptVariant("q", "Is there a mass?", "yes_no", yes_means="positive")
    text = "There is a large mass in the liver. The exact nature of the mass cannot be determined."
    assert parse_answer(text, variant, task) == "positive"
    text = "Yes. The presence of a mass is clear, but its exact nature cannot be determined."
    assert parse_answer(text, variant, task) == "positive"  # "presence" before the doubt is not what it is about


def test_a_hedged_class_name_is_no_answer():
    assert parse_answer("Pneumonia, possibly.", DISEASE, TASKS["pneumonia"]) == "refused"


def test_a_negation_joined_by_and_leaves_the_mention_unclear():
    assert parse_answer("No hemorrhage and a tumor is present.", DISEASE, TASKS["brain"]) == "refused"


def test_the_negation_window_is_eight_words():
    from harness.answers.statements import _polarity

    near = "no evidence of one two three four five six tumor"  # 8 words between "no" and the mention
    far = "no evidence of one two three four five six seven tumor"
    assert _polarity(near, near.index("tumor"), len(near)) == "negative"
    assert _polarity(far, far.index("tumor"), len(far)) == "unclear"


def test_the_claim_is_read_from_the_rendered_question():
    task = TaskSpec(key="t", title="t", modality="image", disease="a skull fracture", positive_name="skull fracture",
                    negative_name="no skull fracture", difficulty=1, hints="", positive_aliases=("yes",),
                    negative_aliases=("no",))
    variant = PromptVariant("q", "Is there {disease}?", "yes_no", yes_means="positive")
    assert parse_answer("The skull is clearly fractured in this image.", variant, task) == "positive"


@pytest.mark.parametrize("text, expected", [
    ("Is the liver normal? The liver is normal.", "negative"),  # a question before the claim is skipped
    ("The image is an axial CT, but the liver is normal.", "negative"),  # the claim in a later clause
    ("The liver is normal and shows no lesions.", "negative"),  # a negation after the claim does not deny it
])
def test_the_claim_stated_back_wherever_it_stands(text, expected):
    task = _task("t", "abnormal", "normal")
    variant = PromptVariant("normal", "Is the liver normal?", "yes_no", yes_means="negative")
    assert parse_answer(text, variant, task) == expected


@pytest.mark.parametrize("text, expected", [
    ("Is there a tumor? There is no tumor.", "negative"),  # a question before a statement is skipped
    ("There is no tumor. It may be an artifact.", "negative"),  # a hedged sentence after keeps the earlier one
])
def test_statements_around_sentences_that_are_not_read(text, expected):
    assert parse_answer(text, DISEASE, TASKS["brain"]) == expected


def test_a_mention_with_a_verb_of_its_own_leaves_a_listed_negation():
    assert parse_answer("No hemorrhage, a tumor is present.", DISEASE, TASKS["brain"]) == "refused"


def test_a_withdrawn_answer_is_not_overruled_by_a_statement():
    assert parse_answer("Yes, it might be. There is a tumor.", DISEASE, TASKS["brain"]) == "refused"


@pytest.mark.parametrize("text, expected", [
    ("The image is an axial CT, but the temporal bones are fractured.", "positive"),  # the claim in a later clause
    ("There is no doubt that on this view the temporal bones are fractured.", "positive"),  # a far "no" does not deny
    ("The temporal bones are fractured without displacement.", "positive"),  # nor does one after the claim
    ("The temporal bones are not fractured.", "negative"),
])
def test_the_claim_and_the_reach_of_a_negation(text, expected):
    task = _task("t", "abnormal", "normal")  # class names that never appear in the answers
    variant = PromptVariant("q", "Are the temporal bones fractured?", "yes_no", yes_means="positive")
    assert parse_answer(text, variant, task) == expected


# ---- statements and what a hedge is about: the knobs of the task's names (MUTANTS.md) ----

def _named(positive: str, negative: str, disease: str, modality: str = "image") -> TaskSpec:
    return TaskSpec(key="n", title="n", modality=modality, disease=disease, positive_name=positive,
                    negative_name=negative, difficulty=1, hints="", positive_aliases=("yes",), negative_aliases=("no",))


@pytest.mark.parametrize("positive, text, expected", [
    ("abnormal", "The scan shows an abnormality in the left lobe.", "positive"),  # a generic class: any abnormality
    ("vascular pathology", "There is an abnormality in the left lobe.", "positive"),
    ("tumor", "The scan shows an abnormality in the left lobe.", "refused"),  # not the finding asked
    ("tumor", "There is no abnormality in this image.", "negative"),  # denying every abnormality denies it
])
def test_abnormality_words_count_for_a_generic_class_only(positive, text, expected):
    task = _named(positive, "normal" if positive == "abnormal" else f"no {positive}", positive)
    variant = PromptVariant("q", "Answer about the {modality}.", "yes_no", yes_means="positive")
    assert parse_answer(text, variant, task) == expected


def test_the_disease_counts_beside_a_generic_class_name():
    task = _named("abnormal appendix", "normal appendix", "appendicitis")
    variant = PromptVariant("q", "Answer about the {modality}.", "yes_no", yes_means="positive")
    assert parse_answer("There is appendicitis.", variant, task) == "positive"


@pytest.mark.parametrize("text, expected", [
    ("The image appears normal. There is a large effusion.", "refused"),  # "normal" but a finding reported
    ("There is no pneumonia. The image appears normal. There is a large effusion.", "negative"),  # the denial decides
    ("There is pneumonia here, but no pneumonia there.", "refused"),  # one sentence, both labels
])
def test_a_normal_claim_and_other_findings(text, expected):
    assert parse_answer(text, DISEASE, TASKS["pneumonia"]) == expected


@pytest.mark.parametrize("text, expected", [
    ("The left kidney shows a renal cyst.", "positive"),  # the class name, when the disease is worded otherwise
    ("The scan does not show any abnormalities.", "negative"),  # a denial of every abnormality
])
def test_the_class_name_and_the_abnormality_words_in_statements(text, expected):
    task = _named("renal cyst", "no renal cyst", "kidney disease")
    variant = PromptVariant("q", "Answer about the {modality}.", "yes_no", yes_means="positive")
    assert parse_answer(text, variant, task) == expected


def test_a_global_question_is_recognised_whatever_its_case():
    variant = PromptVariant("q", "NORMAL image? Answer yes or no.", "yes_no", yes_means="negative")
    text = "There is no pneumonia. There is a large effusion."
    assert parse_answer(text, variant, TASKS["pneumonia"]) == "refused"


def test_a_negated_negative_class_is_unclear():
    assert parse_answer("The lesion is not benign.", DISEASE, TASKS["skin"]) == "refused"


def test_the_organ_of_the_task_names_makes_a_normal_statement():
    task = _named("abnormal liver", "normal liver", "abnormal liver", "CT")
    variant = PromptVariant("q", "Is this CT normal?", "yes_no", yes_means="negative")
    assert parse_answer("The liver appears normal.", variant, task) == "negative"


@pytest.mark.parametrize("task, text, expected", [
    # a trailing hedge withdraws an answer when it names the positive class, the disease or a
    # negative class that is more than "no X" / "normal"; the abnormality words only for a generic class
    (_named("renal cyst", "no renal cyst", "kidney disease"), "Yes, there is a shadow, which could be a renal cyst.",
     "refused"),
    (_named("renal cyst", "no renal cyst", "kidney disease"),
     "Yes, there is a cyst, which could indicate kidney disease.", "refused"),
    (_named("tumor", "no tumor", "tumor"), "Yes, there is a tumor, which could be an abnormality.", "positive"),
    (_named("abnormal", "normal", "abnormal"), "Yes, there is a shadow, which could be an abnormality.", "refused"),
    (_named("vascular pathology", "no vascular pathology", "vascular pathology"),
     "Yes, there is a shadow, which could be a pathology.", "refused"),
    (_named("abnormal", "normal", "cirrhosis"), "Yes, there is a nodular surface, which could be cirrhosis.",
     "refused"),
    (_named("malignant", "benign", "melanoma"), "No, the lesion is not malignant, which could suggest a benign nevus.",
     "refused"),
])
def test_what_a_trailing_hedge_must_name_to_withdraw(task, text, expected):
    variant = PromptVariant("q", "Answer about the {modality}.", "yes_no", yes_means="positive")
    assert parse_answer(text, variant, task) == expected


# ---- the helpers under the rules, pinned one by one (MUTANTS.md, "The answer parser") -----

def test_normalize_drops_decoration_and_keeps_words():
    from harness.answers.rules import normalize

    assert normalize(None) == "" and normalize(3) == ""
    assert normalize("Don\u2019t") == "don't" and normalize("\u2018Yes\u2019") == "yes"
    assert normalize("`No`") == "no" and normalize("'yes'") == "yes" and normalize("it's") == "it's"
    assert normalize("Yes \n\n  No") == "yes\nno"


@pytest.mark.parametrize("sent, says", [
    ("there is a tumor.", True), ("is there a tumor?", False), ("please evaluate the scan.", False),
    ("the presence or absence of a tumor cannot be judged.", False),
    ("the presence or the absence of a tumor is unclear.", False),
])
def test_what_asserts(sent, says):
    from harness.answers.rules import asserts

    assert asserts(sent) == says


@pytest.mark.parametrize("text, i, alone", [
    ("yes, there is a tumor", 0, True), ("i say yes", 2, False), ("so yes", 1, False),
    ("yes no", 0, True), ("no yes", 1, True), ("the answer, yes.", 3, True),
])
def test_an_answer_word_stands_alone(text, i, alone):
    from harness.answers.parsing import _isolated
    from harness.answers.rules import tokens

    assert _isolated(tokens(text), i) == alone


def test_the_bare_clause_and_the_names():
    from harness.answers.parsing import _bare, _both_names, _by_length, _starts_with

    assert _bare("a tumor") == "tumor" and _bare("there is a tumor") == "tumor" and _bare("tumor detected") == "tumor"
    assert _starts_with("tumor, seen", "tumor") and _starts_with("tumor", "tumor")
    assert not _starts_with("tumor-like mass", "tumor") and not _starts_with("tumors", "tumor")
    assert _by_length({"a": "tumor", "b": "no tumor"})[0] == ("b", "no tumor")
    assert not _both_names("x or y", {"a": "x", "b": ""}) and not _both_names("x", {"a": "x"})
    assert _both_names("benign or malignant", {"a": "malignant", "b": "benign"})


@pytest.mark.parametrize("text, expected", [
    ("B. I am not sure.", None),  # a doubt anywhere withdraws the pick
    ("B. It could be anything else.", "B"),  # a soft hedge outside the pick's sentence does not
    ("B, possibly.", None),  # one in it does
])
def test_a_choice_and_its_hedges(text, expected):
    assert parse_choice(text, "tumor", "no tumor") == expected


def test_identical_options_still_take_a_letter():
    assert parse_choice("A", "x", "x") == "A" and parse_choice("x", "x", "x") is None


def test_stems_and_question_words():
    from harness.answers.question import question_words, stem

    assert stem("thickening") == "thicken" and stem("bed") == "bed" and stem("ribs") == "rib"
    assert question_words("Is there pneumothorax in chest film?") == {"pneumothorax"}


def test_normal_statements_and_reported_findings():
    from harness.answers.rules import name_pattern
    from harness.answers.statements import _normal_statement, _reports_finding, _task_words

    assert _normal_statement("there is no abnormality.", set())
    assert _normal_statement("this is a normal chest x-ray.", set())
    assert not _normal_statement("the liver appears normal.", set())
    assert _normal_statement("the liver appears normal.", {"liver"})
    assert _reports_finding(["is there a mass?", "there is a large effusion."], [])
    assert not _reports_finding(["there is a large tumor."], [name_pattern("tumor")])  # its own finding
    assert not _reports_finding(["there is no effusion."], [])
    assert _task_words(_named("abnormal liver", "normal liver", "abnormal liver", "CT")) == {"liver"}
    assert _task_words(_named("evidence of abnormality", "no finding", "signs present findings", "MRI")) == set()


@pytest.mark.parametrize("text, expected", [
    ("Letter A seems right.\nB", None),  # a letter by form and a bare letter: both
    ("I think so. A", "A"),  # a bare letter as a clause of its own
    ("B is correct", "B"), ("B cyst", "B"),  # "b" is never an article
    ("A cyst", None),  # "a" before a noun is the article
    ("The image shows no tumor in the left lobe, although a tumor was suspected.", "B"),  # the head names it
    ("A tumor in the left lobe; no tumor in the right would be wrong.", "A"),
    ("- no tumor seen, though a tumor was suspected", "B"),
    ("I see a tumor in the left lobe.", "A"),  # a mention, failing all else
    ("I have no doubt, clearly a tumor.", "A"),  # a negation more than four words before a mention does not reach it
])
def test_how_a_choice_is_picked(text, expected):
    assert parse_choice(text, "tumor", "no tumor") == expected


def test_a_normal_study_named_after_normal():
    from harness.answers.statements import _normal_statement

    assert _normal_statement("normal chest x-ray.", set()) and not _normal_statement("normal liver.", set())
