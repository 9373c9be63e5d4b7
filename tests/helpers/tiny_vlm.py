"""Randomly initialised VLMs of real architectures with tokenizers made here: no download.

`make_tiny_llava` (CLIP vision tower + Llama) runs anywhere. `make_random_qwen2_vl` needs torchvision
(Qwen2-VL's processor loads a video processor built on it), so it runs on the GPU machines, not on
this project's CI machines; its `size="2b"` has Qwen2-VL-2B's dimensions, for throughput and memory
figures of a real-sized model (its answers are noise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LLAVA_SPECIALS = ["<pad>", "<s>", "</s>", "<image>", "<|user|>", "<|assistant|>", "<|system|>"]
LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2-VL's chat format, reduced to what mmad's messages use (text and image parts).
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Question 1: Is there any defect in the object? A. Yes. B. No. Answer: A B C D",
    "You are an industrial inspector who checks products by images.",
] * 10
# Qwen2-VL-2B-Instruct's dimensions (its config.json); "tiny" keeps the architecture, shrinks the sizes.
QWEN2_VL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "vision": {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2},
        "text": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
        },
        "mrope_section": [4, 2, 2],
        "vocab_size": None,
    },
    "2b": {
        "vision": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4},
        "text": {
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
        },
        "mrope_section": [16, 24, 24],
        "vocab_size": 151936,
    },
}


def _tokenizer(specials: list[str], template: str, **tokens: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, chat_template=template, **tokens)


def make_tiny_llava(folder: Path, seed: int = 0) -> Path:
    """Save a tiny LLaVA (CLIP vision tower + Llama text model) and its processor into folder."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    fast = _tokenizer(LLAVA_SPECIALS, LLAVA_TEMPLATE, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    images = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(
        image_processor=images,
        tokenizer=fast,
        patch_size=14,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(fast),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=2048,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        image_token_index=fast.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_random_qwen2_vl(
    folder: Path, size: str = "tiny", seed: int = 0, device: str = "cpu", max_pixels: int = 112 * 112
) -> Path:
    """Save a randomly initialised Qwen2-VL and its processor (real image processor, made tokenizer).

    The tiny size caps images at max_pixels so that tests stay fast; the 2b size is saved in
    bfloat16, built directly on device.
    """
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    dims = QWEN2_VL_SIZES[size]
    fast = _tokenizer(QWEN_SPECIALS, QWEN_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {token: fast.convert_tokens_to_ids(token) for token in QWEN_SPECIALS}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=max_pixels),
        tokenizer=fast,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_TEMPLATE,
    )
    config = Qwen2VLConfig(
        vision_config={**dims["vision"], "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        text_config={
            **dims["text"],
            "vocab_size": dims["vocab_size"] or len(fast),
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "mrope_section": dims["mrope_section"], "rope_theta": 1e6},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    dtype = torch.float32 if size == "tiny" else torch.bfloat16
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2VLForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
