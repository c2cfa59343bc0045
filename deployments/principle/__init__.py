"""Principle judge (nvidia/Qwen3-Nemotron-32B-GenRM-Principle): does one response satisfy one principle?"""
