"""Finding 6 (image_reliance): do the answers depend on the image at all?

The closed-form prompts are asked again with a content-free image in place of each real
one: a uniform image of the data set's mean colour, at the real image's size (the same
processor path and tile layout, no content).

- test_answers_depend_on_image (invariance, inverted: the answer must NOT be invariant to
  the image): the share of (image, prompt) answers that stay the same without the image,
  a refusal its own outcome, must have an upper bound of at most
  max_unchanged_without_image. Failing = the model answers the same whatever it is shown.
- test_no_answer_without_image (minimum functionality of the test set-up): balanced
  accuracy of the answers about content-free images, scored against the real image's
  class, must have an upper bound of at most 0.5 + max_blind_margin. Failing = the prompt
  or a text prior gives the class away; every accuracy verdict of that model and task
  says so (a WARNING in its message, a note in the report and summary.md).
"""

import pytest

from harness.findings import checks

pytestmark = pytest.mark.finding("image_reliance", check="invariance")


def test_answers_depend_on_image(subject, assert_robust):
    assert_robust(checks.answers_depend_on_image)


@pytest.mark.finding("image_reliance", check="minimum functionality")
def test_no_answer_without_image(subject, assert_robust):
    assert_robust(checks.no_answer_without_image)
