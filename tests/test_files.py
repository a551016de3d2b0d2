import os
import stat

from looptrain.files import write_text_atomic


def test_atomic_write_replaces_content_with_a_normal_file_mode(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    old_mask = os.umask(0o022)
    try:
        write_text_atomic(path, "new")
    finally:
        os.umask(old_mask)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left
