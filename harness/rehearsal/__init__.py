"""The study's checkpoints rehearsed at their real geometry, with random weights (issue 19).

No real checkpoint can be downloaded here, and the snapshots in fixtures/checkpoints/ prove
prompts, special tokens, image-token counts and pixels, not a forward pass. The rehearsal
builds each checkpoint's model from its completed config (true widths, heads, vocabulary,
vision tower, projector, image geometry; one layer per stack by default, every layer with
--full-depth for a GPU), saves it with the checkpoint's file layout, and runs it through the
suite's HF backend on the registry path a real run takes: the preflight, mixed-length
batches, greedy generation with the truncation re-ask, the describe pass, the embeddings the
probe reads, and batch invariance. `python -m harness.rehearsal` prints one row per checkpoint.
"""
