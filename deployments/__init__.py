"""Judge protocols: how each generative reward model is asked (prompt messages) and how its answer is read.

Pure Python + pydantic. Hosting (Ray Serve / vLLM) lives next to these modules but is not imported by them.
"""
