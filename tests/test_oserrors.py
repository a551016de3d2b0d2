"""oserrors: the machine's refusals (full disk, read-only, names, memory) as one line naming the
path a user knows and what to do."""

import errno

import pytest
import tensorflow as tf

from looptrain import oserrors
from looptrain.cli import run_main
from looptrain.errors import UserError
from looptrain.files import temp_prefix

SAVE = "{{function_node __wrapped__SaveV2_dtypes_3_device_/job:localhost/replica:0/task:0/device:CPU:0}} "


@pytest.mark.parametrize("error, message", [
    (tf.errors.ResourceExhaustedError(None, None, SAVE + "/r/checkpoints/ckpt-40_temp/part-00000-of-"
                                      "00001.data-00000-of-00001.tempstate1376; No space left on device "
                                      "[Op:SaveV2]"),
     "/r/checkpoints/ckpt-40: no space left on the device; free space on that file system, or choose "
     "a directory on another one, and run the command again"),
    (tf.errors.PermissionDeniedError(None, None, "/r/sm; Read-only file system"),
     "/r/sm: read-only file system; choose a directory you can write to (or remount it read-write)"),
    (tf.errors.FailedPreconditionError(None, None, "/r/notes.txt is not a directory"),
     "/r/notes.txt: a file stands where a directory is needed; move the file or choose another path"),
    (tf.errors.InvalidArgumentError(None, None, "/r/" + "x" * 300 + "; File name too long"),
     "/r/" + "x" * 300 + ": file name too long; choose a shorter name"),
    (tf.errors.ResourceExhaustedError(None, None, "Exception encountered when calling Conv1D.call().\n\n"
                                      "{{function_node x}} OOM when allocating tensor with shape"
                                      "[3,8,1000000000] and type float on /job:localhost by allocator"),
     "out of memory allocating a tensor of shape [3,8,1000000000] (89.4 GiB); it does not fit in "
     "this machine's memory: reduce the model's sizes, data.seq_length or train.batch_size"),
    (OSError(errno.EROFS, "Read-only file system", f"/r/{temp_prefix('config.json')}x1y2.tmp"),
     "/r/config.json: read-only file system; choose a directory you can write to (or remount it "
     "read-write)"),
    (OSError(errno.ENOSPC, "No space left on device", f"/o/{temp_prefix('model')}x1.tmp/variables"),
     "/o/model: no space left on the device; free space on that file system, or choose a directory "
     "on another one, and run the command again"),
    (OSError(errno.EACCES, "Permission denied", "/r/.lock"),
     "/r/.lock: permission denied; check its permissions, or choose a directory you can write to"),
    (MemoryError("Unable to allocate 7.45 GiB for an array"),
     "out of memory (Unable to allocate 7.45 GiB for an array); it does not fit in this machine's "
     "memory: reduce the model's sizes, data.seq_length or train.batch_size"),
])
def test_each_refusal_names_the_path_a_user_knows_and_what_to_do(error, message):
    assert str(oserrors.as_user_error(error)) == message


def test_other_errors_are_not_mistaken_for_the_machines():
    assert oserrors.as_user_error(ValueError("No space left on device")) is None
    assert oserrors.as_user_error(OSError(errno.ENOENT, "No such file or directory", "x")) is None
    assert oserrors.as_user_error(tf.errors.InvalidArgumentError(None, None, "shapes differ")) is None


def test_a_training_run_is_told_to_resume():
    error = OSError(errno.ENOSPC, "No space left on device", "/r/train.log")
    assert str(oserrors.as_user_error(error, training=True)).endswith(
        "and run it again with --resume=auto (resume='auto' in lt.fit): it continues from the last "
        "complete checkpoint")


def test_reported_raises_the_user_error_from_the_original():
    @oserrors.reported
    def write():
        raise OSError(errno.EROFS, "Read-only file system", "/r/x")

    with pytest.raises(oserrors.FileSystemError, match="^/r/x: read-only file system") as raised:
        write()
    assert isinstance(raised.value.__cause__, OSError)

    @oserrors.reported
    def bug():
        raise KeyError("mine")

    with pytest.raises(KeyError):  # a bug keeps its traceback
        bug()


def test_run_main_prints_one_line_whatever_the_message_holds(capsys):
    def main(argv):
        raise UserError("first line\n\n  second line  \n")

    assert run_main(main, []) == 2
    assert capsys.readouterr().err == "error: first line second line\n"

    def full(argv):
        raise OSError(errno.ENOSPC, "No space left on device", "/r/eval/report.json")

    assert run_main(full, []) == 2
    assert capsys.readouterr().err.startswith("error: /r/eval/report.json: no space left on the device;")
