"""Turning what users pass (strings, PIL images, dicts, Documents) into resolved Documents.

Accepted shapes for a query or a document:

- ``str``: text.
- ``PIL.Image.Image``: an image.
- ``{"text": ...}``, ``{"image": SRC}``, ``{"image": [SRC, ...]}`` or both keys (mixed).
- ``{"pdf": SRC}`` (optionally ``"pages": [1, 3]`` or ``"1-3"``): a PDF, ranked per page
  (``m0rank.preprocessing.pdf``); it is expanded into page documents before scoring.
- vLLM's multimodal shape ``{"content": [{"type": "text", "text": ...},
  {"type": "image_url", "image_url": {"url": SRC}}]}``.
- :class:`m0rank.types.Document`.

Resolving loads every image into an RGB ``PIL.Image`` so that models only ever see pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from m0rank.config import ImageLimits
from m0rank.errors import InvalidInputError, describe_value
from m0rank.preprocessing.images import load_image
from m0rank.preprocessing.pdf import parse_pages
from m0rank.types import Document

__all__ = ["to_document", "to_documents", "resolve_document", "coerce_documents", "image_fields",
           "ImageLoader"]

ImageLoader = Callable[[Any, str], Image.Image]


def to_document(value: Any, field: str) -> Document:
    """Coerce one user value to a :class:`Document` (images not yet loaded).

    Raises:
        InvalidInputError: Unsupported type, unknown dict shape, or empty content.
    """
    if isinstance(value, Document):
        document = value
    elif isinstance(value, str):
        document = Document(text=value)
    elif isinstance(value, Image.Image):
        document = Document(images=(value,))
    elif isinstance(value, dict):
        document = _from_dict(value, field)
    else:
        raise InvalidInputError(
            f"{field} must be a string, a PIL image, a dict with 'text'/'image' keys or a "
            f"Document, got {describe_value(value)}"
        )
    _check_not_empty(document, field)
    return document


def resolve_document(
    document: Document, field: str, load: ImageLoader | None = None,
    limits: ImageLimits | None = None,
) -> Document:
    """Return ``document`` with every image source loaded to an RGB ``PIL.Image``."""
    if not document.images:
        return document
    loader = load or (lambda src, name: load_image(src, name, limits))
    names = image_fields(field, len(document.images))
    images = tuple(loader(src, name) for src, name in zip(document.images, names, strict=True))
    return Document(text=document.text, images=images)


def coerce_documents(
    documents: Any, field: str = "documents", load: ImageLoader | None = None,
    limits: ImageLimits | None = None,
) -> list[Document]:
    """Coerce and resolve a non-empty list of documents, naming each by index in errors."""
    return [resolve_document(doc, f"{field}[{i}]", load, limits)
            for i, doc in enumerate(to_documents(documents, field))]


def to_documents(documents: Any, field: str = "documents") -> list[Document]:
    """Coerce a non-empty list of documents (images stay unresolved), naming each by index."""
    if isinstance(documents, (str, bytes, dict, Document)) or not isinstance(documents, Sequence):
        raise InvalidInputError(
            f"{field} must be a list of documents, got {describe_value(documents)}"
        )
    if len(documents) == 0:
        raise InvalidInputError(f"{field} must not be empty")
    return [to_document(doc, f"{field}[{i}]") for i, doc in enumerate(documents)]


def image_fields(field: str, count: int) -> list[str]:
    """Names of a document's images in errors: ``documents[2].image`` or ``...image[1]``."""
    if count == 1:
        return [f"{field}.image"]
    return [f"{field}.image[{i}]" for i in range(count)]


def _from_dict(value: dict[str, Any], field: str) -> Document:
    if "pdf" in value:
        return _from_pdf_dict(value, field)
    if "content" in value and not ({"text", "image"} & value.keys()):
        return _from_content_parts(value["content"], f"{field}.content")
    if not ({"text", "image"} & value.keys()):
        raise InvalidInputError(
            f"{field} must have a 'text' or an 'image' key, got keys {sorted(value)}"
        )
    text = value.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidInputError(f"{field}.text must be a string, got {describe_value(text)}")
    raw_images = value.get("image")
    if raw_images is None:
        images: tuple[Any, ...] = ()
    elif isinstance(raw_images, (list, tuple)):
        images = tuple(raw_images)
        if not images:
            raise InvalidInputError(f"{field}.image must not be an empty list")
    else:
        images = (raw_images,)
    return Document(text=text, images=images)


def _from_pdf_dict(value: dict[str, Any], field: str) -> Document:
    if {"text", "image", "content"} & value.keys():
        raise InvalidInputError(f"{field} must have either a 'pdf' key or 'text'/'image' keys, "
                                f"got keys {sorted(value)}")
    source = value["pdf"]
    if source is None or (isinstance(source, str) and not source.strip()):
        raise InvalidInputError(f"{field}.pdf must not be empty")
    return Document(pdf=source, pages=parse_pages(value.get("pages"), f"{field}.pages"))


def _from_content_parts(parts: Any, field: str) -> Document:
    if not isinstance(parts, list) or not parts:
        raise InvalidInputError(f"{field} must be a non-empty list of parts, got "
                                f"{describe_value(parts)}")
    texts: list[str] = []
    images: list[Any] = []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str):
                raise InvalidInputError(f"{field}[{i}].image_url.url must be a string")
            images.append(url)
        else:
            raise InvalidInputError(
                f"{field}[{i}] must be a {{'type': 'text'}} or {{'type': 'image_url'}} part, "
                f"got {describe_value(part)}"
            )
    return Document(text="\n".join(texts) if texts else None, images=tuple(images))


def _check_not_empty(document: Document, field: str) -> None:
    if document.text is not None and not document.images and not document.text.strip():
        raise InvalidInputError(f"{field} must not be empty or only whitespace")
    if document.text is None and not document.images and document.pdf is None:
        raise InvalidInputError(f"{field} has neither text nor image")
