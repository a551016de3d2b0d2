"""TensorFlow's start-up without its C++ start-up lines.

Importing TensorFlow 2.21 prints, twice, absl's "All log messages before absl::InitializeLog()"
warning and the oneDNN notice on stderr, before any setting can silence them
(`TF_CPP_MIN_LOG_LEVEL` included). Every command-line entry point imports TensorFlow through
`import_tensorflow()`, which sends stderr to a temporary file for the import alone; if the import
fails, what was printed is shown after all.

It also keeps scikit-learn out of the import: Keras 3 imports it for its scikit-learn wrappers
whenever it is installed (it is, with the `dev` extra `make` installs), which added ~0.7 s of a
~3.8 s import to every command's start. The command-line processes never use those wrappers; in
them, `keras.wrappers.SKLearn*` say scikit-learn is missing. `import sklearn` still works.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow():
    """`import tensorflow` with the C++ start-up lines held back (a no-op once imported)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    blocked = "sklearn" not in sys.modules
    if blocked:
        sys.modules["sklearn"] = None  # `import sklearn` raises ImportError: Keras does without
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if blocked and sys.modules.get("sklearn", 0) is None:
                del sys.modules["sklearn"]
    return tensorflow
