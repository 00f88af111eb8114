"""Exit codes Shoal records itself, shared by the control plane and the node agent."""

from __future__ import annotations

from typing import Final

#: The exit code of a task (or of one instance of a multi-instance task) that Shoal ended instead of
#: letting it exit by itself: past its wall clock, terminated through the API, its job terminated or
#: past the job's wall clock, its node removed with `terminate`. Batch records 0xC000013A
#: (STATUS_CONTROL_C_EXIT) for such a task; as the signed 32-bit exit code it is -1073741510. The
#: signal that actually ended the processes (SIGTERM, then SIGKILL) is not what a user should test for:
#: this code is the same whichever it was, and no program exits with it by itself on Linux.
TERMINATED_EXIT_CODE: Final = 0xC000013A - (1 << 32)
