"""Operations on one node in the client: its files, its logs, commands on it, its scheduling, rebooting and
reimaging it (a base of ``PoolsAPI``: ``client.pools.reboot_node`` and the others)."""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from shoal.v1 import pool_pb2

from ._filestream import FileStream, delete_timeout, write_atomically
from ._nodeexec import ExecSession, start_request
from ._rpc import Rpc
from .errors import InvalidArgument
from .node_types import DisableNodeSchedulingOption, UploadedNodeLogs, disable_node_scheduling_option_to_proto
from .types import Node, NodeFile

__all__ = ["NodeOperationsMixin"]

#: Batch's node deallocation options, as the client spells them.
_DEALLOCATION_OPTIONS = {
    "requeue": pool_pb2.NODE_DEALLOCATION_OPTION_REQUEUE,
    "terminate": pool_pb2.NODE_DEALLOCATION_OPTION_TERMINATE,
    "taskcompletion": pool_pb2.NODE_DEALLOCATION_OPTION_TASK_COMPLETION,
    "retaineddata": pool_pb2.NODE_DEALLOCATION_OPTION_RETAINED_DATA,
}


def _deallocation_option(value: str, reason: str, name: str = "node_deallocation_option") -> int:
    key = value.lower().replace("_", "").replace("-", "")
    if key not in _DEALLOCATION_OPTIONS:
        choices = sorted(_DEALLOCATION_OPTIONS)
        raise InvalidArgument(
            f"{name} must be one of {choices}",
            reason=reason,
            field_violations=[(name, f"one of {choices}")],
        )
    return _DEALLOCATION_OPTIONS[key]


def _aware(when: datetime) -> datetime:
    """``when`` with a time zone (a naive one is local time)."""
    return when if when.tzinfo is not None else when.astimezone()


class NodeOperationsMixin:
    """The methods of ``client.pools`` that act on one node."""

    _rpc: Rpc

    def node_files(
        self, pool_id: str, node_id: str, path: str = "", recursive: bool = False
    ) -> builtins.list[NodeFile]:
        """Files under ``path`` in the node's root directory."""
        request = pool_pb2.ListNodeFilesRequest(name=f"pools/{pool_id}/nodes/{node_id}", path=path, recursive=recursive)
        response = self._rpc.unary(self._rpc.pools.ListNodeFiles, request)
        return [NodeFile.from_proto(f) for f in response.files]

    def read_node_file(
        self,
        pool_id: str,
        node_id: str,
        path: str,
        *,
        offset: int = 0,
        follow: bool = False,
        timeout: float | None = None,
    ) -> FileStream:
        """The bytes of the file ``path`` under the node's root directory (e.g. ``agent.log``), from ``offset``.

        Iterate over the returned :class:`FileStream` for its chunks. With ``follow`` it keeps yielding what
        is appended to the file until cancelled (:meth:`FileStream.cancel`, from any thread, or leaving a
        ``with`` block) or ``timeout`` seconds passed (:class:`DeadlineExceeded`). No link is followed and
        no path leaves the root (:class:`PermissionDenied` ``SYMLINK_NOT_FOLLOWED``, :class:`InvalidArgument`
        ``INVALID_PATH``); a file that is not there raises :class:`NotFound` ``FILE_NOT_FOUND``.
        """
        request = pool_pb2.ReadNodeFileRequest(
            name=f"pools/{pool_id}/nodes/{node_id}", path=path, offset=offset, follow=follow
        )
        call_timeout = timeout if follow else (timeout or self._rpc.timeout)
        return FileStream(self._rpc.pools.ReadNodeFile(request, timeout=call_timeout, metadata=self._rpc.metadata))

    def download_node_file(
        self, pool_id: str, node_id: str, path: str, local_path: str | os.PathLike[str], *, offset: int = 0
    ) -> Path:
        """Write the node's file ``path`` to ``local_path`` (atomically: a temporary file, then a rename)."""
        with self.read_node_file(pool_id, node_id, path, offset=offset) as chunks:
            return write_atomically(chunks, local_path)

    def node_file_properties(self, pool_id: str, node_id: str, path: str) -> NodeFile:
        """Size, modification time, mode and kind of the file or directory ``path`` under the node's root.

        A symbolic link is described as the link itself, never its target.
        """
        request = pool_pb2.GetNodeFilePropertiesRequest(name=f"pools/{pool_id}/nodes/{node_id}", path=path)
        return NodeFile.from_proto(self._rpc.unary(self._rpc.pools.GetNodeFileProperties, request))

    def delete_node_file(self, pool_id: str, node_id: str, path: str, *, recursive: bool = False) -> None:
        """Delete the file ``path`` under the node's root, or with ``recursive`` a directory and all under it.

        A link is deleted as a link (its target stays). A directory without ``recursive`` raises
        :class:`FailedPrecondition` ``FILE_IS_DIRECTORY``; the root, the node's fixed directories, the
        directories of jobs and tasks and the agent's own state raise :class:`PermissionDenied`
        ``FILE_PROTECTED``.
        """
        request = pool_pb2.DeleteNodeFileRequest(
            name=f"pools/{pool_id}/nodes/{node_id}", path=path, recursive=recursive
        )
        self._rpc.unary(self._rpc.pools.DeleteNodeFile, request, timeout=delete_timeout(self._rpc.timeout))

    def upload_node_logs(
        self,
        pool_id: str,
        node_id: str,
        container: str,
        *,
        start_time: datetime,
        end_time: datetime | None = None,
    ) -> UploadedNodeLogs:
        """Have the node's agent upload its own logs written in [``start_time``, ``end_time``] (no end: until
        now) to the account's storage ``container`` (made if missing), as Batch's "upload Batch service logs".

        Each log file whose span meets the window (``agent.log``, ``agent.out`` and their rotated copies)
        becomes the blob ``<virtual_directory_name>/<file name>``; download them with
        ``client.storage.download_prefix``. Naive datetimes are read as local time. A node whose agent is not
        connected raises :class:`FailedPrecondition` ``NODE_NOT_CONNECTED``.
        """
        request = pool_pb2.UploadNodeLogsRequest(name=f"pools/{pool_id}/nodes/{node_id}", container=container)
        request.start_time.FromDatetime(_aware(start_time))
        if end_time is not None:
            request.end_time.FromDatetime(_aware(end_time))
        answer = self._rpc.unary(self._rpc.pools.UploadNodeLogs, request)
        return UploadedNodeLogs(
            container=container,
            virtual_directory_name=answer.virtual_directory_name,
            number_of_files_uploaded=answer.number_of_files_uploaded,
        )

    def exec_node(
        self,
        pool_id: str,
        node_id: str,
        command: Sequence[str] = (),
        *,
        tty: bool = False,
        rows: int = 0,
        columns: int = 0,
        environment: Mapping[str, str] | None = None,
        elevated: bool = False,
        stdin: bytes = b"",
        interactive: bool = False,
        timeout: float | None = None,
    ) -> ExecSession:
        """Run ``command`` (empty: the user's login shell) on the node, as ``kubectl exec`` does: in the node's
        root directory, with the node's ``SHOAL_*``/``AZ_BATCH_*`` variables and ``environment``, as the pool's
        ordinary user, or with ``elevated`` as its administrator (root), where the node's agent runs as root.

        Returns an :class:`ExecSession`: iterate over it for the output as it comes, or call its
        :meth:`~ExecSession.wait` for an :class:`ExecResult`. ``stdin`` is sent and then the input ends, unless
        ``interactive``: then the input stays open for :meth:`~ExecSession.write` and
        :meth:`~ExecSession.close_stdin`. With ``tty`` the command runs under a pseudo-terminal of ``rows`` by
        ``columns`` (:meth:`~ExecSession.resize` changes it); its output is all stdout, and Ctrl-C is the
        byte ``b"\x03"`` written to it. ``timeout`` bounds the whole call (default: none).

        Raises (when iterated) :class:`NotFound` for a node that is not the account's, and
        :class:`FailedPrecondition` ``NODE_NOT_CONNECTED`` for a node whose agent is not connected.
        """
        start = start_request(
            pool_id,
            node_id,
            command,
            tty=tty,
            rows=rows,
            columns=columns,
            environment=environment,
            elevated=elevated,
        )
        session = ExecSession(self._rpc.pools.ExecNode, start, metadata=self._rpc.metadata, timeout=timeout)
        if not interactive:
            session.write(stdin)
            session.close_stdin()
        return session

    def disable_node_scheduling(
        self,
        pool_id: str,
        node_id: str,
        option: DisableNodeSchedulingOption | str = DisableNodeSchedulingOption.REQUEUE,
    ) -> Node:
        """Stop scheduling tasks on the node: its ``scheduling_state`` becomes ``disabled``.

        ``option`` says what happens to the tasks running there: ``requeue`` (stopped and queued again, to
        run elsewhere), ``terminate`` (stopped; they complete as failed and do not run again) or
        ``taskcompletion`` (``task_completion`` too: left to finish). The node is ``offline`` once no task
        runs on it. Returns the node as the server left it. A node disabled already raises
        :class:`FailedPrecondition` ``NODE_ALREADY_IN_TARGET_SCHEDULING_STATE``; a node leaving its pool
        raises :class:`FailedPrecondition` too.
        """
        request = pool_pb2.DisableNodeSchedulingRequest(
            name=f"pools/{pool_id}/nodes/{node_id}",
            option=disable_node_scheduling_option_to_proto(option),  # type: ignore[arg-type]
        )
        return Node.from_proto(self._rpc.unary(self._rpc.pools.DisableNodeScheduling, request))

    def reboot_node(self, pool_id: str, node_id: str, option: str = "requeue") -> Node:
        """Restart the node's agent: the node is ``rebooting``, then starts again as after joining (its
        start task runs again, and the job preparation tasks that ask to), with ``volatile/`` cleared and
        its task directories kept.

        ``option`` says what happens to the tasks running there first: ``requeue`` (stopped and queued
        again), ``terminate`` (stopped; they complete as failed), ``taskcompletion`` (the restart waits
        for them) or ``retaineddata`` (it waits for them and for their directories' retention to pass).
        Allowed on an ``idle``, ``running``, ``offline``, ``starttaskfailed`` or ``unusable`` node;
        otherwise :class:`FailedPrecondition` (``NODE_BEING_REBOOTED``, ``NODE_BEING_CREATED``, ...).
        Returns the node as the server left it; ``wait_node_state`` waits for it to be back.
        """
        request = pool_pb2.RebootNodeRequest(
            name=f"pools/{pool_id}/nodes/{node_id}",
            option=_deallocation_option(option, "INVALID_OPTION", "option"),  # type: ignore[arg-type]
        )
        return Node.from_proto(self._rpc.unary(self._rpc.pools.RebootNode, request))

    def reimage_node(self, pool_id: str, node_id: str, option: str = "requeue") -> Node:
        """As :meth:`reboot_node`, but the node's root directory is wiped and set up as new
        (``reimaging``): its start task, certificates and every job preparation run again."""
        request = pool_pb2.ReimageNodeRequest(
            name=f"pools/{pool_id}/nodes/{node_id}",
            option=_deallocation_option(option, "INVALID_OPTION", "option"),  # type: ignore[arg-type]
        )
        return Node.from_proto(self._rpc.unary(self._rpc.pools.ReimageNode, request))

    def enable_node_scheduling(self, pool_id: str, node_id: str) -> Node:
        """Schedule tasks on the node again: ``scheduling_state`` ``enabled``, ``offline`` → ``idle``.

        A node enabled already raises :class:`FailedPrecondition` ``NODE_ALREADY_IN_TARGET_SCHEDULING_STATE``.
        """
        request = pool_pb2.EnableNodeSchedulingRequest(name=f"pools/{pool_id}/nodes/{node_id}")
        return Node.from_proto(self._rpc.unary(self._rpc.pools.EnableNodeScheduling, request))
