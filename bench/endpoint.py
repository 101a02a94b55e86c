"""Endpoint throughput: the OpenAI backend's concurrency against a server with fixed latency;
with `--server transformers`, real per-request latency against `transformers serve`.

    python bench/endpoint.py [--latency 0.2] [--concurrency 16] [--requests-per-slot 4] [--smoke]
    python bench/endpoint.py --server transformers [--model organism-llava-med] [--requests 48] [--smoke]

A local OpenAI-compatible server (harness.serve.start_server, loopback only, in its own
process as a real endpoint is: this script with --serve) answers every chat request
after a fixed artificial latency (`latency_s`), standing in for a remote GPU server
whose answer takes that long. Its model is `EchoFakeBackend`, a FAKE
backend used only for this measurement (an instant canned answer), so the only cost
is the latency, the HTTP round trip and the client. The harness's OpenAIBackend sends
the same kind of requests (a 64-px PNG image plus a prompt) at concurrency 1 and at
concurrency N, in one process; the ratio of the two throughputs is the figure (ideal: N).
It also checks that requests are spread over several base_urls (two servers).
Last line: `endpoint_speedup_at_concurrency: <ratio>`.

`--server transformers`: a real third-party server instead, `transformers serve`
(`pip install "transformers[serving]"`; started offline on 127.0.0.1, pinned to an
organism model's folder, stopped by process group; harness/tests/transformers_serve.py)
serving a real model, no fake. The harness's OpenAIBackend asks it the suite's
closed-form prompts about the organism's brain_tumor images, one request per call at
concurrency 1 (each a full round trip: PNG encoding, HTTP, the server's preprocessing and
greedy generation of up to 8 tokens, the reply), then all at once at `--concurrency`
(transformers serve generates one request at a time, so expect no speed-up there).
Last line: `transformers_serve_latency_ms: <median per-request latency>`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from _common import Timer, machine, temp_dir

from harness.backends.base import Backend
from harness.core import GenerationRequest, GenerationResult, ModelSpec


class EchoFakeBackend(Backend):
    """FAKE model for the endpoint measurement only: answers "Yes." instantly."""

    def __init__(self, name: str = "echo-fake"):
        self.spec = ModelSpec(name=name, backend="fake", model=name)

    def generate(self, requests, images):
        return [GenerationResult(text="Yes.") for _ in requests]


def requests_for(n: int) -> tuple[list[GenerationRequest], dict]:
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    images = {f"img{i}": Image.fromarray(rng.randint(0, 256, (64, 64, 3), dtype=np.uint8)) for i in range(4)}
    reqs = [GenerationRequest(prompt=f"Is there a lesion? ({i})", image_key=f"img{i % 4}", max_new_tokens=8)
            for i in range(n)]
    return reqs, images


def throughput(urls: list[str], concurrency: int, n: int, cache: Path) -> tuple[float, float]:
    """(seconds, requests per second) for n requests at this concurrency."""
    from harness.backends.openai_backend import OpenAIBackend

    spec = ModelSpec(name="echo-fake", backend="openai", model="echo-fake", base_url=tuple(urls),
                     concurrency=concurrency, timeout_s=30.0, max_retries=0)
    backend = OpenAIBackend(spec, cache_dir=cache)
    try:
        reqs, images = requests_for(n)
        backend.generate(reqs[:1], images)  # warm-up: client, connection
        with Timer() as t:
            results = backend.generate(reqs, images)
        bad = [r.error for r in results if not r.ok]
        if bad:
            raise SystemExit(f"{len(bad)} requests failed, e.g. {bad[0]}")
    finally:
        backend.close()
    return t.seconds, n / t.seconds


class ServerProcess:
    """An echo server in a child process (this script with --serve), driven over its stdin.

    Commands: "reset" restarts the request counts; "stats" prints "<requests seen> <peak in flight>".
    """

    def __init__(self, latency: float):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", f"--latency={latency}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"the server process did not start: {self.url!r}")

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def serve(latency: float) -> int:
    """--serve: run one echo server until stdin closes, answering reset/stats commands."""
    from harness.serve import start_server

    with start_server(EchoFakeBackend(), latency_s=latency, served_name="echo-fake") as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "reset":
                server.set_faults(None)
                print("ok", flush=True)
            elif line.strip() == "stats":
                print(f"{len(server.requests_seen)} {server.max_in_flight}", flush=True)
    return 0


def organism_requests(n: int) -> tuple[list[GenerationRequest], dict]:
    """n closed-form requests as the suite asks them: brain_tumor images x the prompt variants."""
    from _common import grid

    _, (task,), items, variants = grid(["brain_tumor"], n_per_class=4)
    images = {item.image_id: item.load() for item in items[task.key]}
    cells = [(item.image_id, v.render(task)) for item in items[task.key] for v in variants]
    cells = [cells[(i * 7) % len(cells)] for i in range(n)]  # spread over images and prompts
    return [GenerationRequest(prompt=p, image_key=k, max_new_tokens=8) for k, p in cells], images


def transformers_latency(args) -> int:
    """--server transformers: per-request latency of a real model behind `transformers serve`."""
    import statistics

    from harness.backends.openai_backend import OpenAIBackend
    from harness.organism.shipped import resolve_builtin
    from harness.tests.transformers_serve import missing_serving_extra, start_transformers_serve

    reason = missing_serving_extra()
    if reason:
        raise SystemExit(reason)
    print(f"machine: {machine()}")
    folder = str(resolve_builtin(args.model))
    cache = temp_dir("bench-endpoint-")
    reqs, images = organism_requests(args.requests)
    with Timer() as started:
        server = start_transformers_serve(cache / "transformers-serve.log", folder)
    with server:
        spec = ModelSpec(name=args.model, backend="openai", model=folder, base_url=(server.url,),
                         concurrency=args.concurrency, timeout_s=60.0, max_retries=0)
        backend = OpenAIBackend(spec, cache_dir=cache)
        try:
            backend.generate(reqs[:2], images)  # warm-up: connection, first generation
            latencies = []
            for req in reqs:
                with Timer() as t:
                    (res,) = backend.generate([req], images)
                if not res.ok:
                    raise SystemExit(f"a request failed: {res.error or 'empty answer'}\n{server.log()}")
                latencies.append(t.seconds)
            with Timer() as burst:
                results = backend.generate(reqs, images)
            if not all(r.ok for r in results):
                raise SystemExit(f"{sum(not r.ok for r in results)} requests failed at concurrency {args.concurrency}")
        finally:
            backend.close()
    ms = sorted(1000 * s for s in latencies)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    print(f"transformers serve {args.model} ({folder}): started in {started.seconds:.1f}s")
    print(f"concurrency 1: {len(ms)} requests, latency median {statistics.median(ms):.1f} ms, "
          f"p90 {p90:.1f} ms, min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms")
    print(f"concurrency {args.concurrency}: {len(reqs)} requests in {burst.seconds:.2f}s = "
          f"{len(reqs) / burst.seconds:.1f} req/s (the server generates one at a time)")
    print(f"transformers_serve_latency_ms: {statistics.median(ms):.1f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the server waits before each answer")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests-per-slot", type=int, default=4, help="requests per worker at concurrency N")
    ap.add_argument("--smoke", action="store_true", help="latency 0.05 s, 2 requests per slot (transformers: 8 requests)")
    ap.add_argument("--server", choices=("echo", "transformers"), default="echo",
                    help="echo: the fixed-latency FAKE server (default); transformers: real latency of "
                         "`transformers serve` serving an organism model")
    ap.add_argument("--model", default="organism-llava-med", help="--server transformers: the organism model served")
    ap.add_argument("--requests", type=int, default=48, help="--server transformers: requests measured")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args.latency)
    if args.server == "transformers":
        if args.smoke:
            args.requests = 8
        return transformers_latency(args)
    if args.smoke:
        args.latency, args.requests_per_slot = 0.05, 2

    print(f"machine: {machine()}")
    cache = temp_dir("bench-endpoint-")
    n_many = args.concurrency * args.requests_per_slot
    n_one = max(4, args.requests_per_slot * 2)
    with ServerProcess(args.latency) as s1, ServerProcess(args.latency) as s2:
        t1, r1 = throughput([s1.url], 1, n_one, cache)
        tn, rn = throughput([s1.url], args.concurrency, n_many, cache)
        s1.ask("reset")
        s2.ask("reset")  # restart the counts for the spreading check
        t2, r2 = throughput([s1.url, s2.url], args.concurrency, n_many, cache)
        (seen1, peak1), (seen2, peak2) = (map(int, s.ask("stats").split()) for s in (s1, s2))
    spread, peak = (seen1, seen2), max(peak1, peak2)
    print(f"server latency {args.latency:.3f}s per request (ideal: {1 / args.latency:.1f} req/s per request in flight)")
    print(f"concurrency 1: {n_one} requests in {t1:.2f}s = {r1:.2f} req/s")
    print(f"concurrency {args.concurrency}: {n_many} requests in {tn:.2f}s = {rn:.2f} req/s")
    print(f"concurrency {args.concurrency} over 2 base_urls: {n_many} requests in {t2:.2f}s = {r2:.2f} req/s; "
          f"requests per server {spread[0]} + {spread[1]} (incl. 1 warm-up), peak in flight on one server {peak}")
    if min(spread) == 0:
        raise SystemExit("requests were not spread over both base_urls")
    print(f"endpoint_speedup_at_concurrency: {rn / r1:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
