"""The visual expert: a few-shot anomaly detector and the drawing of its maps (no mmad imports above errors)."""
