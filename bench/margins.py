"""How close is each of the organism's greedy choices to a tie? (issue 25)

    python bench/margins.py [--models a,b] [--tasks a,b] [--save FILE] [--against FILE]

Runs the default grid exactly as the suite's fill does (the same Suite, requests,
batches, re-asks of cut-off answers, descriptions and the diagnoser's answers), into a
fresh store, with an HF backend that also keeps the logits of every generated step. The
margin of a greedy step is the gap between the chosen token's logit and the runner-up's;
an answer's margin is the smallest over its steps up to its end. A change of arithmetic
(another CPU's kernels, another thread count) moves logits by some small delta; it can
change an answer only where the margin is below about twice that delta.

Prints, per model and stage, the answers, their smallest margin and how many lie under
1e-3, 1e-2 and 0.1 logits. `--save` writes every answer's margin (by store key);
`--against` compares with a file saved under other kernels and prints the largest change
of a margin (an upper bound on twice the logit change where it matters). Last line:
`smallest_margin: X`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, csv_arg, machine  # noqa: E402
from harness.backends.hf import HFBackend  # noqa: E402


class MarginBackend(HFBackend):
    """The HF backend, generating the same tokens, keeping each answer's smallest greedy margin."""

    sink: list = []

    def _generate_batch(self, reqs, images):
        import torch

        inputs = self._encode(reqs, images)
        config = self._generation_config(reqs[0].max_new_tokens)
        config.output_logits = config.return_dict_in_generate = True
        with torch.inference_mode():
            out = self._model.generate(**inputs, generation_config=config)
        new = out.sequences[:, inputs["input_ids"].shape[1]:]
        logits = torch.stack(out.logits, 1).float()  # (rows, steps, vocab)
        top = logits.topk(2, dim=-1).values
        gaps = (top[..., 0] - top[..., 1]).cpu().numpy()
        eos = config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos])
        texts = [t.strip() for t in self._tokenizer.batch_decode(new, skip_special_tokens=True)]
        for row, req in enumerate(reqs):
            ids = new[row].tolist()
            end = next((i for i, t in enumerate(ids) if t in eos), len(ids) - 1)
            self.sink.append((self.spec.name, req.image_key is not None, req.max_new_tokens,
                              req.prompt, req.image_key, float(gaps[row, : end + 1].min())))
        from harness.backends.hf_batch import hit_token_cap

        return list(zip(texts, hit_token_cap(new.tolist(), config.eos_token_id, reqs[0].max_new_tokens)))


def _suite(models, tasks, cache_dir: Path):
    from harness.plugin.options import Settings
    from harness.suite import Suite

    settings = Settings(rootdir=REPO, models=models, models_files=[], tasks=tasks, tasks_files=[], manifest=None,
                        data_root=None, hf_datasets=False, n_per_class=100, seed=42, cache_dir=cache_dir,
                        results_dir=None, diagnoser=None, judge=None, allow_remote=False, update_baseline=False,
                        thresholds_path=REPO / "thresholds.toml", baseline_path=REPO / "baseline.toml")
    return Suite(settings)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="registry names (default: the suite's default models)")
    parser.add_argument("--tasks", default=None, help="task keys (default: all four)")
    parser.add_argument("--save", type=Path, default=None, help="write every answer's margin to this JSON file")
    parser.add_argument("--against", type=Path, default=None, help="a --save file from other kernels to compare with")
    args = parser.parse_args(argv)
    import torch

    suite = _suite(csv_arg(args.models), csv_arg(args.tasks), Path(tempfile.mkdtemp(prefix="medvlm-margins-")))
    needs = {(m.name, t.key): {"closed", "describe"} for m in suite.models for t in suite.tasks}
    for m in suite.models:  # as the suite does: the bases and previous versions are answered too
        for other in (m.base_model, m.previous):
            if other:
                for t in suite.tasks:
                    needs.setdefault((other, t.key), set()).add("closed")
    start = time.perf_counter()
    suite.fill(needs, lambda spec: MarginBackend(spec, cache_dir=suite.settings.cache_dir))
    print(f"# {machine()}; torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()} kernels, "
          f"{torch.get_num_threads()} threads; {time.perf_counter() - start:.0f} s")
    failures = {k: str(v) for k, v in suite.failures.items()}
    if failures:
        print(f"# stages that failed: {failures}")
    groups = defaultdict(list)
    describe_budget = suite.thresholds.generation["describe_max_new_tokens"]
    for model, image, budget, _, _, gap in MarginBackend.sink:
        stage = ("describe" if budget == describe_budget else "closed") if image else "diagnose"
        groups[(model, stage)].append(gap)
    for (model, stage), gaps in sorted(groups.items()):
        g = np.array(gaps)
        print(f"{model:<24} {stage:<9} answers {g.size:>6}  smallest margin {g.min():.4f}  "
              f"under 1e-3: {(g < 1e-3).sum()}  under 1e-2: {(g < 1e-2).sum()}  under 0.1: {(g < 0.1).sum()}")
    keyed = {json.dumps(row[:5]): row[5] for row in MarginBackend.sink}
    if args.save:
        args.save.write_text(json.dumps(keyed))
    if args.against:
        other = json.loads(args.against.read_text())
        shared = keyed.keys() & other.keys()
        delta = max((abs(keyed[k] - other[k]) for k in shared), default=float("nan"))
        print(f"margins compared with {args.against}: {len(shared)} answers, largest change {delta:.3g} logits")
    print(f"answers: {len(MarginBackend.sink)}")
    print(f"smallest_margin: {min(r[5] for r in MarginBackend.sink):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
