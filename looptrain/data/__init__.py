"""Data: the sources `lt.fit` takes (`sources`: arrays, datasets, functions of the step) and the
position-from-step pipeline (`pipeline`); the command line's formats below them (`text`, `arrays`,
`corpus`, and the generated `synthetic` and `images` sets).

`lt.data.ArraySource` etc. are imported on first use (TensorFlow starts with them).
"""

import importlib

_SOURCES = ("ArraySource", "DatasetSource", "FileSource", "FunctionSource", "IndexedSource",
            "RecordSource", "TFRecordSource", "DataPosition", "as_source")


def __getattr__(name: str):
    if name in _SOURCES:
        return getattr(importlib.import_module("looptrain.data.sources"), name)
    raise AttributeError(f"module 'looptrain.data' has no attribute {name!r}")
