"""What the agent's NodeService file calls and the control plane agree on: the ErrorInfo domain and
reasons of the agent's file errors, and the bounds of a listing.

The agent (`shoal.nodeagent.fileservice`) answers with these; the control plane
(`shoal.server.api.nodefiles`) passes them on to its client with their status code, and takes
any other error of an agent to mean that the node could not serve the call.
"""

from __future__ import annotations

from typing import Final

#: The ErrorInfo domain of the agent's NodeService errors.
ERROR_DOMAIN: Final = "shoal.agent.v1"

INVALID_PATH: Final = "INVALID_PATH"
INVALID_OFFSET: Final = "INVALID_OFFSET"
NOT_A_REGULAR_FILE: Final = "NOT_A_REGULAR_FILE"
FILE_NOT_FOUND: Final = "FILE_NOT_FOUND"
#: The task's own directory is not on this node (never made here, or deleted: retention, DeleteTaskFiles).
#: The task API tells a cleaned-up directory apart; elsewhere it reads as FILE_NOT_FOUND.
TASK_DIRECTORY_NOT_FOUND: Final = "TASK_DIRECTORY_NOT_FOUND"
SYMLINK_NOT_FOLLOWED: Final = "SYMLINK_NOT_FOLLOWED"
FILE_ACCESS_DENIED: Final = "FILE_ACCESS_DENIED"
FILE_UNREADABLE: Final = "FILE_UNREADABLE"
#: A listing went past `LISTING_MAX_ENTRIES`, `LISTING_MAX_BYTES`, `LISTING_MAX_DEPTH` or
#: `LISTING_MAX_SECONDS` (FAILED_PRECONDITION: list a smaller directory, or not recursively).
TOO_MANY_FILES: Final = "TOO_MANY_FILES"
#: DeleteFile of a directory without `recursive` (FAILED_PRECONDITION).
FILE_IS_DIRECTORY: Final = "FILE_IS_DIRECTORY"
#: DeleteFile of what may not be deleted (PERMISSION_DENIED): the node root, a task's own directory
#: (and the directories above it), the node's fixed directories, or the agent's own state.
FILE_PROTECTED: Final = "FILE_PROTECTED"
#: UploadLogs could not put the agent's logs in the container (FAILED_PRECONDITION; the message says why:
#: the storage service's refusal, or a log file that could not be read).
LOG_UPLOAD_FAILED: Final = "LOG_UPLOAD_FAILED"

#: Who may call the agent (not file errors: the control plane does not pass these on).
#: A NodeService file call without the server's client certificate.
CALLER_NOT_SERVER: Final = "CALLER_NOT_SERVER"
#: Exec without the attempt's secret, or with another.
EXEC_SECRET_MISMATCH: Final = "EXEC_SECRET_MISMATCH"

#: Every file reason above: the control plane passes these on as they are.
REASONS: Final = frozenset(
    {
        INVALID_PATH,
        INVALID_OFFSET,
        NOT_A_REGULAR_FILE,
        FILE_NOT_FOUND,
        TASK_DIRECTORY_NOT_FOUND,
        SYMLINK_NOT_FOLLOWED,
        FILE_ACCESS_DENIED,
        FILE_UNREADABLE,
        TOO_MANY_FILES,
        FILE_IS_DIRECTORY,
        FILE_PROTECTED,
        LOG_UPLOAD_FAILED,
    }
)

#: ExecNode refusals the control plane passes on with their code.
#: The request cannot be run: the first message is not `start`, or a field is out of range (INVALID_ARGUMENT).
INVALID_EXEC_REQUEST: Final = "INVALID_EXEC_REQUEST"
#: The user the command would run as cannot be had on this node (FAILED_PRECONDITION).
EXEC_USER_UNAVAILABLE: Final = "EXEC_USER_UNAVAILABLE"
#: The node runs as many commands and shells as it takes (RESOURCE_EXHAUSTED).
TOO_MANY_EXEC_SESSIONS: Final = "TOO_MANY_EXEC_SESSIONS"
#: Every ExecNode reason above.
EXEC_REASONS: Final = frozenset({INVALID_EXEC_REQUEST, EXEC_USER_UNAVAILABLE, TOO_MANY_EXEC_SESSIONS})

#: The most entries one ListFiles answer holds.
LISTING_MAX_ENTRIES: Final = 100_000
#: The largest ListFiles answer (its serialized size). The control plane's channels to agents
#: accept `AGENT_REPLY_MAX_BYTES`; the margin is for the message's framing.
LISTING_MAX_BYTES: Final = 8 * 1024 * 1024
#: How large an answer of an agent the control plane accepts.
AGENT_REPLY_MAX_BYTES: Final = LISTING_MAX_BYTES + 1024 * 1024
#: How deep a recursive listing goes below the directory listed.
LISTING_MAX_DEPTH: Final = 256
#: How long a listing may take (the control plane waits 30 s for the answer).
LISTING_MAX_SECONDS: Final = 20.0
