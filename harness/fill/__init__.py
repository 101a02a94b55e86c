"""The fill phase: every answer, description, verdict of the diagnoser and embedding a
selected test needs, asked of the models and written to the store before any test asserts.

    scheduler.py        which stage runs for which (model, task), each model loaded once
    closed_form.py      closed-form answers (with re-asks of cut-off ones) and the optional judge
    describe.py         descriptions, and the text-only diagnoser reading them
    embed.py            vision embeddings for the probe
    judge.py            the LLM judge's prompts and reply parser
    batch_invariance.py the check that batching does not change answers

Prediction and assertion are separate: tests read what these stages stored.
"""
