import dataclasses

import pytest

from conftest import ROOT
from looptrain import cli
from looptrain import config as config_lib
from looptrain.errors import ConfigError


def test_defaults_are_the_reference_textcnn():
    c = config_lib.Config()
    assert (c.data.seq_length, c.data.vocab_size) == (600, 5000)
    assert (c.model.name, c.model.embedding_dim, c.model.num_filters, c.model.kernel_size,
            c.model.hidden_dim, c.model.dropout) == ("textcnn", 64, 256, 5, 128, 0.5)
    assert (c.train.learning_rate, c.train.batch_size, c.train.eval_every, c.train.patience) == (
        1e-3, 64, 100, 1000)


def test_textcnn_toml_is_the_default_config():
    assert config_lib.load_toml(ROOT / "configs" / "textcnn.toml") == config_lib.Config()


def test_tiny_toml_shrinks_sizes_and_keeps_dropout_on():
    tiny, ref = config_lib.load_toml(ROOT / "configs" / "tiny.toml"), config_lib.Config()
    assert tiny.model.name == ref.model.name and tiny.model.dropout > 0
    assert tiny.data.seq_length < ref.data.seq_length and tiny.model.num_filters < ref.model.num_filters


def test_textrnn_toml_loads():
    c = config_lib.load_toml(ROOT / "configs" / "textrnn.toml")
    assert (c.model.name, c.model.num_layers, c.model.hidden_dim) == ("textrnn", 2, 128)


@pytest.mark.parametrize("body, message", [
    ("[train]\nbach_size = 3\n", "unknown config key 'train.bach_size'; did you mean 'train.batch_size'?"),
    ("[trian]\nbatch_size = 3\n", "unknown config section 'trian'; did you mean 'train'? (known: "),
    ('[train]\nbatch_size = "64"\n', "'train.batch_size' must be int, got str"),
    ("[train]\nbatch_size = true\n", "'train.batch_size' must be int, got bool"),
    ("[train]\nbatch_size = 0\n", "'train.batch_size' must be >= 1, got 0"),
    ("[model]\ndropout = 1.5\n", "'model.dropout' must be <= 0.99"),
    ("[train\n", "invalid TOML"),
])
def test_bad_config_files_name_the_file_and_key(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        config_lib.load_toml(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_config_file_is_an_error():
    with pytest.raises(ConfigError, match="does-not-exist.toml does not exist"):
        config_lib.load_toml("does-not-exist.toml")


def test_int_is_accepted_for_float():
    assert config_lib.Config().replace({"train.learning_rate": 1}).train.learning_rate == 1.0


def test_parse_set_types_values():
    assert config_lib.parse_set(["train.learning_rate=3e-4", "model.name=textrnn",
                                 "train.batch_size=32"]) == {
        "train.learning_rate": 3e-4, "model.name": "textrnn", "train.batch_size": 32}
    with pytest.raises(ConfigError, match="expected section.key=value"):
        config_lib.parse_set(["train.batch_size"])
    with pytest.raises(ConfigError, match=r"unknown config key 'train.xyzzy' \(known train keys: "
                                          r"train.batch_size, .*\)$"):
        config_lib.parse_set(["train.xyzzy=1"])  # nothing close: its section's keys
    with pytest.raises(ConfigError, match=r"unknown config key 'train.bach_size'; did you mean "
                                          r"'train.batch_size'\?$"):
        config_lib.parse_set(["train.bach_size=1"])  # a typo: the one key, not a page of them


def test_precedence_defaults_file_flags_set(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nbatch_size = 8\nseed = 5\npatience = 50\n")
    args = cli.train_parser().parse_args(
        ["--config", str(path), "--batch-size", "16", "--seed", "6", "--set", "train.seed=7"])
    c = cli.resolve_train_config(args)
    assert (c.train.batch_size, c.train.seed, c.train.patience, c.train.eval_every) == (16, 7, 50, 100)


def test_flag_errors_name_the_flag():
    args = cli.train_parser().parse_args(["--batch-size", "-5"])
    with pytest.raises(ConfigError, match="--batch-size: 'train.batch_size' must be >= 1, got -5"):
        cli.resolve_train_config(args)


def test_resume_config_keeps_architecture_fixed():
    saved = config_lib.Config()
    extended = config_lib.resume_config(saved, {"train.max_steps": 10, "train.patience": 5},
                                        source="--set")
    assert (extended.train.max_steps, extended.train.patience) == (10, 5)
    same = config_lib.resume_config(saved, {"model.embedding_dim": 64}, source="--set")
    assert same == saved
    with pytest.raises(ConfigError, match=r"cannot change 'model.embedding_dim' .*saved 64, given 77"):
        config_lib.resume_config(saved, {"model.embedding_dim": 77}, source="--set")


def test_every_field_has_a_doc_and_a_reference_name():
    names = {f.name for cls in (config_lib.DataConfig, config_lib.ModelConfig, config_lib.TrainConfig)
             for f in dataclasses.fields(cls)}
    assert {"seq_length", "vocab_size", "embedding_dim", "num_filters", "kernel_size", "hidden_dim",
            "dropout", "learning_rate", "batch_size", "num_epochs", "eval_every", "checkpoint_every",
            "patience"} <= names
    for cls in (config_lib.DataConfig, config_lib.ModelConfig, config_lib.TrainConfig):
        assert all(f.metadata["doc"] for f in dataclasses.fields(cls))


def test_the_configuration_reference_documents_every_key_and_is_current():
    from looptrain import config_reference

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [key for key in config_lib.known_keys() if f"| `{key}` |" not in page]
    assert not missing, f"docs/configuration.md lacks {missing}"
    assert config_reference.render(page) == page, "docs/configuration.md is stale: run `make docs`"


def test_the_reference_is_generated_from_the_field_metadata(tmp_path):
    from looptrain import config_reference

    page = tmp_path / "configuration.md"
    page.write_text(f"intro\n{config_reference.BEGIN}\nold\n{config_reference.END}\nrest\n")
    assert config_reference.main(["--check", str(page)]) == 1  # stale
    field = next(f for f in dataclasses.fields(config_lib.ModelConfig) if f.name == "dropout")
    assert config_reference.main([str(page)]) == 0 and config_reference.main(["--check", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n")
    assert ("| `model.dropout` | float | `0.5` | 0 to 0.99 | fixed | "
            f"{field.metadata['doc']} |") in text
    assert "| `train.max_steps` | int | `0` | >= 0 | may change |" in text
