"""Reading a model's answers: the parser (parsing.py, its word lists in rules.py, the
question-aware readings in question.py) and its measurement on real answers (evaluate.py,
`python -m harness.answers.evaluate`, on fixtures/answers/real_answers.csv).

Every verdict of the suite starts from reading one answer as positive, negative or
refused (SPEC §3); the fill phase calls `parse_answer` for each stored answer.
"""

from .parsing import PARSER_VERSION, parse_answer, parse_choice, parse_yes_no

__all__ = ["PARSER_VERSION", "parse_answer", "parse_choice", "parse_yes_no"]
