"""What a map does when one of its items fails: try it again, collect the error and go on, or
stop the map -- the default (an error in one worker stops the others).

    pool.map(fetch, urls, retries=3, retry_on=(ConnectionError, nbpar.WorkerDiedError))
    pool.map(parse, files, on_error="collect")        # a failed item's result: its TaskError
    pool.map(parse, files, on_error="collect", default=None)

A failure is an exception raised by the task, its worker's death (`WorkerDiedError`), a
timeout (`TaskTimeoutError`) or an argument or result that does not pickle
(`SerializationError`). `retries=N` runs an item up to N more times when its failure is an
instance of `retry_on` (every `Exception` by default, a dead worker and a timeout included);
each failed attempt that was retried is kept in the report (`Report.retried`, with its
attempt number). With `on_error="collect"`, an item that failed for good takes the place of
its result as its `nbpar.TaskError` (or `default=`), is listed in `Report.errors`, and the
map goes on to the end.

Pure: the Boss's state (state.py) asks the policy; pool.py builds it from a map's keywords.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import describe

NO_DEFAULT: Any = object()
ON_ERROR = ("raise", "collect")


@dataclass(frozen=True)
class FailurePolicy:
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    on_error: str = "raise"
    default: Any = NO_DEFAULT

    def retry(self, exc: BaseException, failed_before: int) -> bool:
        """Whether an item that failed `failed_before` times already runs again."""
        return failed_before < self.retries and isinstance(exc, self.retry_on)

    @property
    def collects(self) -> bool:
        return self.on_error == "collect"

    def placeholder(self, error: Any) -> Any:
        """What stands in a collected item's result: its TaskError, or `default`."""
        return error if self.default is NO_DEFAULT else self.default


def make_policy(retries: Any = 0, retry_on: Any = Exception, on_error: Any = "raise",
                default: Any = NO_DEFAULT) -> FailurePolicy | None:
    """The policy of a map's keywords (None: the default, nothing to ask), checked here so
    that a bad value is an error at the call."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, got {describe(retries)}")
    types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException)
                            for t in types):
        raise TypeError(f"retry_on must be an exception class or a tuple of them, got "
                        f"{describe(retry_on)}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'collect', got {describe(on_error)}")
    if default is not NO_DEFAULT and on_error != "collect":
        raise ValueError("default= is the result of a failed item under on_error='collect'; "
                         "pass on_error='collect' as well")
    if retries == 0 and on_error == "raise":
        return None
    return FailurePolicy(retries, types, on_error, default)
