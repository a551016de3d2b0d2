"""The classifier's identity across looptrain versions: a model key added later, at the value that
reproduces the runs saved before it, must not make those runs' checkpoints "another run's"."""

from dataclasses import asdict

from looptrain.config import ModelConfig
from looptrain.migrations import MIGRATIONS
from looptrain.task import identity_of
from looptrain.tasks.classification import model_identity


class _Saved:  # a task whose identity is the classifier's model part only
    def __init__(self, model):
        self.model = model

    def identity(self):
        return {"model": model_identity(self.model)}


def test_keys_added_later_at_their_old_value_leave_the_identity_unchanged():
    added = {key.split(".", 1)[1]: value for key, value in MIGRATIONS.items()
             if key.startswith("model.")}
    assert added and set(added) <= set(asdict(ModelConfig()))
    now = asdict(ModelConfig())  # today's config: every key, the added ones at their defaults
    before = {key: value for key, value in now.items() if key not in added}  # an older version's
    assert {k: now[k] for k in added} == added  # the defaults are the old behaviour
    assert identity_of(_Saved(now)) == identity_of(_Saved(before))
    for key, value in added.items():  # the same key at another value is another model
        assert identity_of(_Saved({**now, key: not value})) != identity_of(_Saved(before))
