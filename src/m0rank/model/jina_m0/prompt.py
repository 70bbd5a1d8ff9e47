"""The jina-reranker-m0 prompt template (m0-reference.md §1.6).

The reference formats a pair as ``"**Document**:\\n{doc}\\n**Query**:\\n{query}"``: the
document comes *first*. An image side is the placeholder
``<|vision_start|><|image_pad|><|vision_end|>``. There is no chat template and no system
prompt; the score token (id 100) is appended to the token ids afterwards.

Mixed documents (text with images) are not covered by the reference's ``compute_score``. We
use vLLM's rule for multimodal content: one placeholder per image, then the text, joined by a
newline (``"\\n".join([placeholder] * n + [text])``), so m0rank and vLLM build the same prompt.
"""

from __future__ import annotations

__all__ = ["IMAGE_PLACEHOLDER", "format_side", "format_m0_prompt"]

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def format_side(text: str | None, num_images: int) -> str:
    """Content of one side: placeholders for its images, then its text, newline-joined."""
    parts = [IMAGE_PLACEHOLDER] * num_images
    if text is not None:
        parts.append(text)
    return "\n".join(parts)


def format_m0_prompt(
    query_text: str | None, query_images: int, doc_text: str | None, doc_images: int
) -> str:
    """The full prompt for one pair, document first, exactly as the reference builds it."""
    document = format_side(doc_text, doc_images)
    query = format_side(query_text, query_images)
    return f"**Document**:\n{document}\n**Query**:\n{query}"
