"""The exceptions mmad raises. Every message says what went wrong, where, and what to do.

Hierarchy::

    MMADError                       base of everything raised on purpose
    ├── DataError                   the benchmark files are wrong
    │   ├── BenchmarkFormatError    mmad.json (or a built benchmark) is not in the official shape
    │   ├── UnsafePathError         a path in the data leaves the data root ("..", absolute)
    │   └── DatasetLayoutError      an anomaly-detection dataset folder does not pair up (builder)
    ├── AnswersFormatError          an answers / records / results file cannot be read
    ├── DownloadError               the Hub cannot be reached, or the disk is too small
    ├── ConfigError                 a setting, flag or name is invalid (unknown model, bad subset, ...)
    │   ├── UnknownModelError       a "provider:model" name that no registry entry answers
    │   └── TooFewTemplatesError    --shots asks for more template images than the benchmark lists
    ├── MissingExtraError           an optional dependency is not installed; names the pip extra
    ├── RunError                    a run directory cannot be created, resumed or trusted
    │   ├── BudgetExceededError     --max-cost was reached; the run stopped cleanly
    │   └── CacheError              the response cache folder or database cannot be used
    └── ModelCallError              one request to a model failed (kept in the record, not raised
        │                           to the user unless every retry failed)
        ├── RetryableError          429, 5xx, time-out, dropped connection: worth another try
        └── PermanentError          4xx other than 429, malformed reply: retrying will not help

Library code raises these; the CLI turns them into one red line and a non-zero exit.
"""

from __future__ import annotations


class MMADError(Exception):
    """Base class of every error mmad raises on purpose."""


class DataError(MMADError):
    """The benchmark's files are missing, unreadable or inconsistent."""


class BenchmarkFormatError(DataError):
    """A benchmark json is not in the official MMAD shape."""


class UnsafePathError(DataError):
    """A path in the data points outside the data root."""


class DatasetLayoutError(DataError):
    """An anomaly-detection dataset folder does not have the expected layout."""


class AnswersFormatError(MMADError):
    """An answers, records or published-results file cannot be read."""


class DownloadError(MMADError):
    """The dataset could not be downloaded."""


class ConfigError(MMADError):
    """A setting or name is invalid."""


class UnknownModelError(ConfigError):
    """No registered backend answers this model name."""


class TooFewTemplatesError(ConfigError):
    """Selected images list fewer template images than --shots shows (a sweep skips such a cell)."""


class MissingExtraError(MMADError):
    """An optional dependency is missing."""

    def __init__(self, feature: str, extra: str, packages: str) -> None:
        msg = f"{feature} needs {packages}, which is not installed. Install it with: pip install 'mmad[{extra}]'"
        super().__init__(msg)
        self.extra = extra


class RunError(MMADError):
    """A run directory cannot be created, resumed or trusted."""


class BudgetExceededError(RunError):
    """The cost budget was reached."""


class CacheError(RunError):
    """The response cache cannot be opened, read or written (or its size limit is invalid)."""


class ModelCallError(MMADError):
    """One request to a model failed."""

    def __init__(self, message: str, *, error_class: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.retry_after = retry_after


class RetryableError(ModelCallError):
    """A failure that another attempt may fix (rate limit, server error, time-out)."""


class PermanentError(ModelCallError):
    """A failure that another attempt will not fix."""


class BudgetReachedError(ModelCallError):
    """A call not sent: its expected cost would have passed --max-cost (error class ``budget``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_class="budget")
