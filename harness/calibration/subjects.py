"""Simulated subjects with known truth, for measuring what each verdict can detect.

A subject here is what the fill phase would have stored for one model on one task: an
image × variant grid of outcomes (and, for the gap findings, descriptions read by a
diagnoser, or encoder embeddings). Its *true* per-variant rates are set by the
caller, so the calibration study (harness/calibration/study.py) knows the right
verdict and counts how often the suite's own findings code gives it.

The noise is the kind real models show:

- answers correlated within an image: each image has a latent difficulty u_i ~ U(0, 1)
  and is answered correctly under variant j when u_i < p_j, so an image the model gets
  wrong is wrong under most prompts;
- a few per cent of answers changing between prompts: with probability `redraw` a cell
  forgets the image's latent and is redrawn (correct with probability p_j), which keeps
  variant j's true accuracy at p_j;
- random refusals: a cell is refused with probability r_j, whatever the image.

So the true balanced accuracy of variant j is p_j (1 − r_j) (a refusal counts wrong),
and its true refusal rate is r_j. Everything is drawn from a numpy Generator the
caller seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..findings.grid import Grid


def image_ids(n_per_class: int) -> tuple[list[str], np.ndarray]:
    """Ids and classes of a balanced sample (positives first)."""
    ids = [f"sim/positive/{i:04d}" for i in range(n_per_class)] + [f"sim/negative/{i:04d}" for i in range(n_per_class)]
    is_pos = np.r_[np.ones(n_per_class, bool), np.zeros(n_per_class, bool)]
    return ids, is_pos


def correctness(rng: np.random.Generator, latent: np.ndarray, p: np.ndarray, redraw: float) -> np.ndarray:
    """(n, K) correct flags: latent u_i < p_j, except cells redrawn with probability `redraw`."""
    p = np.asarray(p, dtype=float)
    n, k = latent.shape[0], p.shape[0]
    correct = latent[:, None] < p[None, :]
    fresh = rng.random((n, k)) < redraw
    return np.where(fresh, rng.random((n, k)) < p[None, :], correct)


def outcomes(is_pos: np.ndarray, correct: np.ndarray, refused: np.ndarray) -> np.ndarray:
    """Label-mapped outcomes: the true label when correct, the other when not, 'refused' where refused."""
    truth = np.where(is_pos, "positive", "negative")[:, None]
    wrong = np.where(is_pos, "negative", "positive")[:, None]
    out = np.where(correct, truth, wrong).astype(object)
    out[refused] = "refused"
    return out


@dataclass
class GridSpec:
    """True per-variant accuracy (among answers) and refusal rate, and the answer noise."""

    accuracy: np.ndarray  # (K,) p_j
    refusal: np.ndarray  # (K,) r_j
    redraw: float = 0.05

    @property
    def true_ba(self) -> np.ndarray:
        return np.asarray(self.accuracy) * (1.0 - np.asarray(self.refusal))


def closed_grid(rng: np.random.Generator, n_per_class: int, spec: GridSpec, variants: list[str],
                latent: np.ndarray | None = None) -> Grid:
    """One simulated closed-form grid; `latent` shares image difficulty with another arm or model."""
    ids, is_pos = image_ids(n_per_class)
    u = rng.random(len(ids)) if latent is None else latent
    correct = correctness(rng, u, spec.accuracy, spec.redraw)
    refused = rng.random(correct.shape) < np.asarray(spec.refusal)[None, :]
    return Grid(ids, list(variants), is_pos, outcomes(is_pos, correct, refused))


def paired_latent(rng: np.random.Generator, latent: np.ndarray, rho: float) -> np.ndarray:
    """A second arm's image difficulty, sharing the first's with probability `rho` per image.

    Two pipelines reading the same picture (a model and its fine-tune, direct answers
    and descriptions) find the same images hard; rho sets how often.
    """
    keep = rng.random(latent.shape[0]) < rho
    return np.where(keep, latent, rng.random(latent.shape[0]))


def flip_pair_grid(rng: np.random.Generator, n_per_class: int, flip: float, pairs: int, accuracy: float,
                   refusal: float, concentration: float = 2.0) -> tuple[Grid, list[tuple[str, str]]]:
    """A grid of `pairs` (base, perturbed) variant pairs whose answers differ on a `flip` share of images.

    Each image has its own flip propensity ~ Beta(mean flip, `concentration`): an unstable
    image tends to flip under every pair (correlated within the image). The perturbed
    answer is the base answer changed with that propensity, so the true flip rate of
    every pair is `flip`. Refusals fall on cells at random with probability `refusal`.
    """
    ids, is_pos = image_ids(n_per_class)
    n = len(ids)
    a, b = flip * concentration, (1.0 - flip) * concentration
    propensity = rng.beta(a, b, n) if 0.0 < flip < 1.0 else np.full(n, flip)
    base = correctness(rng, rng.random(n), np.full(pairs, accuracy), 0.05)
    flips = rng.random((n, pairs)) < propensity[:, None]
    perturbed = base ^ flips
    correct = np.concatenate([base, perturbed], axis=1)
    refused = rng.random(correct.shape) < refusal
    names = [f"v{j}" for j in range(pairs)] + [f"v{j}_perturbed" for j in range(pairs)]
    grid = Grid(ids, names, is_pos, outcomes(is_pos, correct, refused))
    return grid, [(f"v{j}", f"v{j}_perturbed") for j in range(pairs)]


def embeddings(rng: np.random.Generator, n_per_class: int, auroc: float, dim: int, factors: int = 16,
               noise: float = 0.05) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embeddings of an encoder whose best linear rule separates the classes at population AUROC `auroc`.

    An encoder's embedding varies along a few directions and little along the rest: here
    `factors` latent factors with variances 1, 1/2, ..., 1/factors are mixed into `dim`
    dimensions by a random orthonormal map, plus isotropic noise of variance `noise`.
    The classes differ by a mean shift along a random direction of the latent space,
    scaled so that the Bayes rule (linear, the classes share one covariance) has
    AUROC = Phi(Delta / sqrt(2)), Delta the Mahalanobis distance of the shift.
    """
    from scipy.stats import norm

    ids, is_pos = image_ids(n_per_class)
    n = len(ids)
    factors = min(factors, dim)
    variances = 1.0 / np.arange(1, factors + 1)
    mixing, _ = np.linalg.qr(rng.standard_normal((dim, factors)))  # (dim, factors), orthonormal columns
    direction = rng.standard_normal(factors)
    direction /= np.linalg.norm(direction)
    # In the latent basis the covariance is diag(variances + noise) (the orthonormal mixing
    # keeps the noise isotropic there), so Delta^2 = sum u_k^2 s^2 / (v_k + noise) for shift s u.
    unit = np.sqrt(np.sum(direction ** 2 / (variances + noise)))
    shift = direction * (np.sqrt(2.0) * norm.ppf(auroc) / unit)
    latent = rng.standard_normal((n, factors)) * np.sqrt(variances)
    latent[is_pos] += shift
    X = latent @ mixing.T + rng.standard_normal((n, dim)) * np.sqrt(noise)
    return X, is_pos, ids


def content_free_grid(rng: np.random.Generator, real: Grid, unchanged: float, concentration: float = 2.0) -> Grid:
    """The answers about content-free stand-ins of `real`'s images, keeping a `unchanged` share.

    Each image has its own propensity to change ~ Beta(mean 1 − unchanged, `concentration`):
    a stand-in that reads as "normal" changes the answers about an abnormal image under
    most prompts (correlated within the image). A changed answer is the other label (a
    refusal becomes a random label), so the true unchanged share is `unchanged`.
    """
    n, k = real.outcome.shape
    change = 1.0 - unchanged
    a, b = change * concentration, unchanged * concentration
    propensity = rng.beta(a, b, n) if 0.0 < change < 1.0 else np.full(n, change)
    changed = rng.random((n, k)) < propensity[:, None]
    other = np.where(real.outcome == "positive", "negative", "positive")
    refused = real.outcome == "refused"
    other[refused] = np.where(rng.random(int(refused.sum())) < 0.5, "positive", "negative")
    outcome = np.where(changed, other, real.outcome).astype(object)
    return Grid([f"{i}#content-free" for i in real.image_ids], list(real.variants), real.is_pos, outcome)


def blind_grid(rng: np.random.Generator, n_per_class: int, ba: float, varying: float, variants: list[str],
               refusal: float, redraw: float = 0.05) -> Grid:
    """Answers about content-free images with true balanced accuracy `ba` (a refusal wrong).

    A `varying` share of the images get answers of their own (correct, against the real
    image's class, with the accuracy that makes the balanced accuracy `ba`; correlated
    within the image as closed_grid's); the others get the prompt's default answer
    (positive under even prompts, negative under odd ones), the same for every image:
    balanced accuracy 0.5 on them. Refusals fall at random with probability `refusal`.
    """
    ids, is_pos = image_ids(n_per_class)
    n, k = len(ids), len(variants)
    p = (ba / (1.0 - refusal) - (1.0 - varying) * 0.5) / varying if varying else 0.5
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"balanced accuracy {ba} cannot come from a varying share of {varying}")
    correct = correctness(rng, rng.random(n), np.full(k, p), redraw)
    own = outcomes(is_pos, correct, np.zeros((n, k), bool))
    default = np.where(np.arange(k) % 2 == 0, "positive", "negative")[None, :].repeat(n, axis=0)
    outcome = np.where((rng.random(n) < varying)[:, None], own, default).astype(object)
    outcome[rng.random((n, k)) < refusal] = "refused"
    return Grid([f"{i}#content-free" for i in ids], list(variants), is_pos, outcome)
