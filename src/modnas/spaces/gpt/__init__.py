"""Decoder-only GPT spaces (HW-GPT-Bench's GPT-S and a CPU-sized variant)."""
