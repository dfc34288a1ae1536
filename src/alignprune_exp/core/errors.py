"""User-facing errors: the CLI prints their message as one line and exits with status 2."""


class AlignPruneError(Exception):
    """A problem with the user's input (config, data, label files) that names the fix."""


class DataError(AlignPruneError):
    """Missing, malformed or mismatched data or label files."""


class ConfigError(AlignPruneError):
    """A configuration value that cannot work."""


class TrainingDiverged(AlignPruneError):
    """The training loss became non-finite; the run stops with status ``diverged``."""

    def __init__(self, epoch: int, loss: float, note: str = ""):
        super().__init__(f"training diverged at epoch {epoch} (loss {loss}): lower the learning rate{note}")
        self.epoch, self.loss, self.note = epoch, loss, note

    def __reduce__(self):  # picklable across joblib workers despite the multi-argument constructor
        return (type(self), (self.epoch, self.loss, self.note))


class ResultsWriteError(AlignPruneError):
    """A results file could not be written completely (disk full, permissions); nothing half-written is left."""


class RunInterrupted(Exception):
    """A stop signal (SIGTERM, SIGUSR1, SIGINT) ended the run; its latest checkpoint resumes it."""


# Exit statuses of train.py, documented in the README ("Long runs and clusters").
EXIT_FAILED = 1  # a sweep with failed cells, or an unexpected error
EXIT_INPUT = 2  # a one-line input error (bad config value, missing or unreadable file)
EXIT_INTERRUPTED = 3  # stopped by a signal after writing a checkpoint: relaunch with resume=auto
EXIT_DIVERGED = 4  # the loss became non-finite (status=diverged)
