"""The machine: platform facts, filesystem mechanics, background lanes, waiting, the logger."""
