"""Fresh (untrained) organism models and processors, built from configs.

The same transformers classes as the study's checkpoints: LLaVA (CLIP vision tower +
Llama decoder, LlavaForConditionalGeneration), Gemma-3 (SigLIP + Gemma-3 decoder,
Gemma3ForConditionalGeneration) and a Llama causal LM for the text-only diagnoser.
The geometry comes from config.Geometry; tokenizer and chat templates from vocab.py.
"""

from __future__ import annotations

import torch

from harness.organism import tiny

from .config import Geometry


def _text_kwargs(geo: Geometry, tokenizer, init_range: float) -> dict:
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=geo.text_width,
        intermediate_size=geo.mlp_ratio * geo.text_width,
        num_hidden_layers=geo.text_layers,
        num_attention_heads=geo.heads,
        num_key_value_heads=geo.heads,
        max_position_embeddings=1024,
        initializer_range=init_range,
        tie_word_embeddings=True,  # half the embedding parameters, and faster to train
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _vision_kwargs(geo: Geometry) -> dict:
    return dict(
        hidden_size=geo.vision_width,
        intermediate_size=geo.mlp_ratio * geo.vision_width,
        num_hidden_layers=geo.vision_layers,
        num_attention_heads=geo.heads,
        image_size=geo.image_size,
        patch_size=geo.patch_size,
    )


def build_llava(geo: Geometry, tokenizer, init_range: float):
    """(LlavaForConditionalGeneration, LlavaProcessor), untrained."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**_vision_kwargs(geo), projection_dim=geo.vision_width,
                                       initializer_range=init_range),
        text_config=LlamaConfig(**_text_kwargs(geo, tokenizer, init_range)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy=geo.feature_strategy,
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    size = geo.image_size
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=geo.patch_size,
        vision_feature_select_strategy=geo.feature_strategy,
        num_additional_image_tokens=1,  # the CLS token (which the "default" strategy drops)
        chat_template=tokenizer.chat_template,
    )
    return LlavaForConditionalGeneration(config), processor


def build_gemma(geo: Geometry, tokenizer, init_range: float):
    """(Gemma3ForConditionalGeneration, Gemma3Processor), untrained."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil
    from transformers import Gemma3Processor, Gemma3TextConfig, SiglipVisionConfig

    head_dim = geo.text_width // geo.heads
    text = Gemma3TextConfig(
        **_text_kwargs(geo, tokenizer, init_range), head_dim=head_dim, query_pre_attn_scalar=head_dim,
        sliding_window=1024,  # longer than any sequence: every layer sees the whole prompt
        layer_types=["sliding_attention"] * (geo.text_layers - 1) + ["full_attention"],
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        vision_config=SiglipVisionConfig(**_vision_kwargs(geo)),
        text_config=text,
        mm_tokens_per_image=geo.image_tokens,
        image_token_index=ids("<image_soft_token>"),
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        initializer_range=init_range,
        tie_word_embeddings=True,
    )
    size = geo.image_size
    image_processor = Gemma3ImageProcessorPil(size={"height": size, "width": size})
    processor = Gemma3Processor(image_processor, tokenizer, image_seq_length=geo.image_tokens,
                                chat_template=tokenizer.chat_template)
    model = Gemma3ForConditionalGeneration(config)
    # transformers starts the image projection at zero: every image would map to the
    # same soft tokens and no gradient would tell them apart at first (tiny.py).
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, init_range)
    return model, processor


def build_text_lm(geo: Geometry, tokenizer, init_range: float):
    """A LlamaForCausalLM for the diagnoser (loads with AutoModelForCausalLM)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(**_text_kwargs(geo, tokenizer, init_range)))


def finish(model, tokenizer) -> None:
    """Greedy, short generation defaults; Gemma-3 also stops at end-of-turn (tiny.py)."""
    tiny._generation_defaults(model, tokenizer)


def parameter_count(model) -> int:
    return tiny.parameter_count(model)
