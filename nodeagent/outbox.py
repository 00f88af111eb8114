"""Task events not yet committed by the server."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from shoal.agent.v1 import agent_pb2


class Outbox:
    """Numbers events, keeps them until an EventsAck covers them, and wakes the sender."""

    def __init__(self) -> None:
        self._events: OrderedDict[int, agent_pb2.TaskEvent] = OrderedDict()
        self._next_id = 1
        self.changed = asyncio.Event()

    def add(self, event: agent_pb2.TaskEvent) -> int:
        """Give `event` the next id and keep it; returns the id."""
        event.event_id = self._next_id
        self._next_id += 1
        self._events[event.event_id] = event
        self.changed.set()
        return event.event_id

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
