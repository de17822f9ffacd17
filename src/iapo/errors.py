"""The errors a user's input or files can cause. The command line reports each as one paragraph
(the message names the file, key or value and the fix) and exits with code 2.

They live here, apart from the modules that raise them, so that `iapo` can catch them without
importing torch, pandas or scipy: commands that need none of these (`--help`, `tables`,
`summarize`, `audit`, `notebook`) start in a fraction of the time."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


class DeviceError(ValueError):
    """`--device` names a device this machine or this torch build cannot run on."""


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, or an output folder from other settings)."""


class SummaryError(ValueError):
    """A run folder is missing, unfinished or unreadable; the message names it and the fix."""


class AuditError(ValueError):
    """A malformed claims file or a missing input; the message names it."""


class VideoError(RuntimeError):
    """No video can be written: an unsupported file, or MuJoCo cannot render here; the message
    names the problem and the fix."""
