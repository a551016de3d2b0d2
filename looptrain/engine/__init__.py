"""The engine: the outer loop and what it runs, taking built objects. It imports nothing from the
configuration, the command line, the model registry or the data formats above it."""
