"""CPU-side input handling: image reading, input coercion, prompt templates, Qwen2-VL glue."""
