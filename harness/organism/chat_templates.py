"""The chat templates of the tiny test models and the organism: LLaVA-1.5, Mistral (as in
LLaVA-NeXT-Mistral) and Gemma-3 turn formats, written here (not copied) so the three
differ only in their turn markers, as the real ones do. Split from tiny.py.
"""

from __future__ import annotations


# A macro rendering a message's content: a plain string, or a list of typed parts where
# {"type": "image"} becomes the family's image placeholder. Kept in one place so the
# three templates differ only in their turn markers, as the real ones do.
_CONTENT_MACRO = (
    "{%- macro content(c) -%}"
    "{%- if c is string -%}{{ c }}"
    "{%- else -%}{%- for part in c -%}"
    "{%- if part['type'] == 'image' -%}{{ IMAGE }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)

# LLaVA-1.5 style: "USER: <image>\nquestion ASSISTANT:".
_LLAVA_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{ content(m['content']) + '\n' }}"
    "{%- elif m['role'] == 'user' -%}{{ 'USER: ' + content(m['content']) + ' ' }}"
    "{%- elif m['role'] == 'assistant' -%}{{ 'ASSISTANT: ' + content(m['content']) + eos_token }}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

# Mistral style as in LLaVA-NeXT-Mistral: "[INST] <image>\nquestion [/INST]"; a system
# message is prefixed to the first user turn (Mistral has no system role).
_MISTRAL_TEMPLATE = (
    "{%- set ns = namespace(system='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{%- set ns.system = content(m['content']) + '\n\n' -%}"
    "{%- elif m['role'] == 'user' -%}{{ '[INST] ' + ns.system + content(m['content']) + ' [/INST]' }}"
    "{%- set ns.system = '' -%}"
    "{%- elif m['role'] == 'assistant' -%}{{ ' ' + content(m['content']) + eos_token }}"
    "{%- endif -%}{%- endfor -%}"
)

# Gemma-3 style: BOS in the template, turns delimited by start/end-of-turn tokens, the
# assistant called "model", a system message prefixed to the first user turn.
_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{%- set ns.system = content(m['content']) + '\n\n' -%}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\n' }}"
    "{{ ns.system + content(m['content']) + '<end_of_turn>\n' }}"
    "{%- set ns.system = '' -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

_IMAGE_PLACEHOLDER = {"llava": "<image>\n", "llava_next": "<image>\n", "gemma3": "<start_of_image>"}
_TURNS = {"llava": _LLAVA_TEMPLATE, "llava_next": _MISTRAL_TEMPLATE, "gemma3": _GEMMA_TEMPLATE}


def chat_template(family: str) -> str:
    """The Jinja chat template of a family, with its image placeholder filled in."""
    placeholder = _IMAGE_PLACEHOLDER[family].replace("\n", "\\n")
    return "{%- set IMAGE = '" + placeholder + "' -%}" + _CONTENT_MACRO + _TURNS[family]
