"""Qwen2-VL parts shared by the families built on it (jina-m0, MonoQwen).

- ``inputs``: tokenizer + image processor glue, ``<|image_pad|>`` expansion;
- ``weights``: the one flat/nested weight-name mapping and the strict loader;
- ``collate``: the one left-pad collation and the pad id;
- ``packing``: padding-free packed attention and per-pair M-RoPE positions;
- ``vision_cache``: vision-tower features cached by image content.
"""
