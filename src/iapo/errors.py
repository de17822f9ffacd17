"""The errors a user's input or files can cause. The command line reports each as one paragraph
(the message names the file, key or value and the fix) and exits with code 2.

They share one base class, `IapoError`, which `iapo` catches in one place. They live here, apart
from the modules that raise them, so that `iapo` can catch them without
importing torch, pandas or scipy: commands that need none of these (`--help`, `tables`,
`summarize`, `audit`, `notebook`) start in a fraction of the time."""

from __future__ import annotations


class IapoError(Exception):
    """An error of the user's input, files or environment, not of the code: `iapo` prints its
    message (which names the file, key or value and the fix) as one paragraph and exits with
    `exit_code`."""

    exit_code = 2


class ConfigError(IapoError, ValueError):
    """A bad `params.yaml` or a bad command-line choice; the message names the key and the fix."""


class CheckpointError(IapoError, RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


class DeviceError(IapoError, ValueError):
    """`--device` names a device this machine or this torch build cannot run on."""


class TrainingError(IapoError, RuntimeError):
    """Training cannot go on (diverged, or an output folder from other settings)."""


class SummaryError(IapoError, ValueError):
    """A run folder is missing, unfinished or unreadable; the message names it and the fix."""


class AuditError(IapoError, ValueError):
    """A malformed claims file or a missing input; the message names it."""


class VideoError(IapoError, RuntimeError):
    """No video can be written: an unsupported file, or MuJoCo cannot render here; the message
    names the problem and the fix."""


class DiagnosticError(IapoError, RuntimeError):
    """A diagnostic cannot run on this input; the message names the file or option and the fix."""


class NotebookError(IapoError, RuntimeError):
    """A notebook is missing or failed; the message names it and where its error is."""

    exit_code = 1  # a failed figure is a failure of the study, not of the input


class MissingSummaryError(NotebookError):
    """The summary tables a notebook reads are absent: a step of the pipeline has not run yet."""

    exit_code = 2
