"""Task events not yet committed by the server."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from shoal.agent.v1 import agent_pb2

AttemptId = tuple[str, str, int, int, int]


def _attempt_id(event: agent_pb2.TaskEvent) -> AttemptId:
    # A job's preparation or release run is named like an attempt: `job_task` tells it from one.
    a = event.attempt
    return (a.job_id, a.task_id, a.attempt, a.instance, event.job_task)


class Outbox:
    """Numbers events, keeps them until an EventsAck covers them, and wakes the sender.

    A RUNNING event that has not been sent yet when its attempt's COMPLETED
    arrives is dropped: COMPLETED carries the start time too, and a short task
    then costs the server one report instead of two.
    """

    def __init__(self) -> None:
        self._events: OrderedDict[int, agent_pb2.TaskEvent] = OrderedDict()
        self._next_id = 1
        self.changed = asyncio.Event()
        #: Events with an id up to this one have been handed to a stream.
        self.sent_up_to = 0
        #: Unsent RUNNING events by attempt.
        self._running: dict[AttemptId, int] = {}

    def add(self, event: agent_pb2.TaskEvent) -> int:
        """Give `event` the next id and keep it; returns the id."""
        event.event_id = self._next_id
        self._next_id += 1
        self._events[event.event_id] = event
        if event.kind == agent_pb2.TASK_EVENT_KIND_RUNNING:
            self._running[_attempt_id(event)] = event.event_id
        elif self._running:
            earlier = self._running.pop(_attempt_id(event), None)
            if event.kind == agent_pb2.TASK_EVENT_KIND_COMPLETED and earlier is not None and earlier > self.sent_up_to:
                del self._events[earlier]
        self.changed.set()
        return event.event_id

    def only_running_after(self, event_id: int) -> bool:
        """True when every event after `event_id` not yet acknowledged is a RUNNING (and there is one)."""
        kinds = [ev.kind for ev in self.after(event_id, 1_000_000)]
        return bool(kinds) and all(k == agent_pb2.TASK_EVENT_KIND_RUNNING for k in kinds)

    def mark_sent(self, up_to: int) -> None:
        """Events up to `up_to` went out (they can no longer be dropped)."""
        self.sent_up_to = max(self.sent_up_to, up_to)
        if self._running:
            self._running = {k: v for k, v in self._running.items() if v > up_to}

    def ack(self, up_to: int) -> int:
        """Drop every event with id ≤ `up_to`; returns how many were dropped."""
        dropped = 0
        while self._events:
            first = next(iter(self._events))
            if first > up_to:
                break
            del self._events[first]
            dropped += 1
        return dropped

    def pending(self) -> list[agent_pb2.TaskEvent]:
        """Every unacknowledged event, oldest first."""
        return list(self._events.values())

    def after(self, event_id: int, limit: int) -> list[agent_pb2.TaskEvent]:
        """Up to `limit` unacknowledged events with an id above `event_id`, oldest first."""
        out: list[agent_pb2.TaskEvent] = []
        for eid, ev in self._events.items():
            if eid > event_id:
                out.append(ev)
                if len(out) >= limit:
                    break
        return out

    @property
    def last_id(self) -> int:
        """The id of the newest event ever added (0 when none)."""
        return self._next_id - 1

    def __len__(self) -> int:
        return len(self._events)
