"""Data loading: decode and normalise images, list task images from a manifest, an
image folder, a Hugging Face dataset or the synthetic generator, and draw the balanced
per-class sample."""

from harness.data.images import image_sha256, load_image, normalise_image, pixel_sha256, to_rgb
from harness.data.sampling import SamplingWarning, sample_balanced
from harness.data.sources import (
    IMAGE_EXTENSIONS,
    LazyHashItem,
    load_image_folder,
    load_manifest,
    load_synthetic,
    make_image_id,
)
from harness.data.hf_datasets import load_hf_dataset
from harness.data.synthetic import DIFFICULTY_PARAMS, difficulty_params, generate_image

__all__ = [
    "DIFFICULTY_PARAMS",
    "IMAGE_EXTENSIONS",
    "LazyHashItem",
    "SamplingWarning",
    "difficulty_params",
    "generate_image",
    "image_sha256",
    "load_hf_dataset",
    "load_image",
    "load_image_folder",
    "load_manifest",
    "load_synthetic",
    "make_image_id",
    "normalise_image",
    "pixel_sha256",
    "sample_balanced",
    "to_rgb",
]
