"""What happens to a task when an attempt ends: a pure decision."""

from __future__ import annotations

from dataclasses import dataclass

from shoal import containers
from shoal.v1 import common_pb2

# Failures that happen before or around the user's program: retrying would
# fail the same way, so Batch does not count or retry them.
NOT_RETRIED_CODES = frozenset(
    {
        "CommandProgramNotFound",
        "CommandLaunchFailed",
        "BlobNotFound",
        "BlobDownloadMiscError",
        "BlobAccessDenied",
        "ResourceFileCreateFailed",
        "FileUploadMiscError",
        "TaskEnded",
        # (A package that cannot be deployed: Batch's pre-processing error.)
        "ApplicationPackageError",
        # (A container that cannot be made or started: its image, registry or settings.)
        containers.CONTAINER_INVALID_IMAGE,
        containers.CONTAINER_INVALID_REGISTRY,
        containers.CONTAINER_INVALID_SETTINGS,
        containers.CONTAINER_MISC_ERROR,
    }
)


@dataclass(frozen=True)
class AttemptOutcome:
    """The agent's report of one finished attempt."""

    exit_code: int | None
    failure_code: str  # empty on success
    succeeded: bool


def should_retry(outcome: AttemptOutcome, retry_count: int, max_retries: int) -> bool:
    """True when the task goes back to ACTIVE for another try.

    Only non-zero exits are retried (up to `max_retries`; -1 means without
    limit); launch, staging, upload and wall-clock failures complete the task.
    """
    if outcome.succeeded:
        return False
    if outcome.failure_code in NOT_RETRIED_CODES:
        return False
    if outcome.exit_code is None:
        return False
    return max_retries < 0 or retry_count < max_retries


def failure_category(code: str) -> int:
    """Category Batch uses for each failure code."""
    return common_pb2.ERROR_CATEGORY_SERVER_ERROR if code == "TaskEnded" else common_pb2.ERROR_CATEGORY_USER_ERROR
