"""Models: one module per family, all registered by name in `registry`."""

from looptrain.models import (  # noqa: F401  (registration side effect)
    bi_rnn, conv_net, fasttext, mlp, multi_cnn, text_cnn, text_rnn)
from looptrain.models import tfidf  # noqa: F401,E402  (registration side effect)
from looptrain.models.registry import build_model, create_model, get_model_class, registered_names

__all__ = ["build_model", "create_model", "get_model_class", "registered_names"]
