"""Record helpers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.server.domain.records import SlotMap

ops = st.lists(st.tuples(st.sampled_from(["set", "pop", "clear"]), st.integers(0, 4), st.integers(1, 4)), max_size=40)


@given(ops)
def test_slot_map_total_is_the_sum(script: list[tuple[str, int, int]]) -> None:
    m = SlotMap()
    for op, k, v in script:
        key = ("j", f"t{k}")
        if op == "set":
            m[key] = v
        elif op == "pop":
            m.pop(key, None)
        else:
            m.clear()
        assert m.total == sum(m.values())
