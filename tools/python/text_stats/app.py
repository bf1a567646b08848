"""text_stats: counts in a text (a Python tool; see tools/python/toolenv_guest.py)."""

import collections
import re

from toolenv_guest import Run, ToolError, tool  # noqa: F401 - Run is the component's export

WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


@tool
def text_stats(text: str, top: int = 3) -> dict:
    """Count the characters, words, sentences and lines of a text and list its most common words (case-insensitive). Example: {"text": "The cat saw the dog."} returns {"characters": 20, "words": 5, "sentences": 1, "lines": 1, "top_words": [["the", 2], ["cat", 1], ["saw", 1]]}.

    Args:
        text: The text to analyse.
        top: How many of the most common words to list (0 to 50).
    """
    if not 0 <= top <= 50:
        raise ToolError(f"top must be between 0 and 50, got {top}")
    words = [w.lower() for w in WORD.findall(text)]
    sentences = [s for s in re.split(r"[.!?]+", text) if s.strip()]
    counts = collections.Counter(words)
    # Ties keep first-appearance order, so the result does not depend on hashing.
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return {
        "characters": len(text),
        "words": len(words),
        "sentences": len(sentences),
        "lines": len(text.splitlines()) if text else 0,
        "top_words": [[w, n] for w, n in ranked],
    }
