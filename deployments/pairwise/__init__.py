"""Pairwise judge (nvidia/Qwen3-Nemotron-235B-A22B-GenRM-2603): which of two responses is more helpful?"""
