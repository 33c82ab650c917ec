import os

# tests never train the full zoo on a cache miss unexpectedly: they use the shipped checkpoints
os.environ.setdefault("INFERML_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_inferml_cache"))
