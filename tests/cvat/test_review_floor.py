"""The review budget's floor: a short task is not silenced by the frame budget.

The default frame budget is 3 % of the task's frames: on the 60-frame scenario that is one
3-frame item, so of job 1's two real problems (an ID swap and a ghost) one would never reach
a reviewer. ``sync.review.min_items_per_job`` (default 3) gives every job at least that many
of its best items.
"""

from __future__ import annotations

from typing import Any

import pytest

from cvat_extension.cvat.sync import run_sync


def issue_kinds(standin: Any) -> list[str]:
    with standin.store.lock:
        firsts = [min((c for c in standin.store.comments.values() if c.issue_id == i.id), key=lambda c: c.id)
                  for i in standin.store.issues.values()]
    return sorted(c.message.split(":")[0] for c in firsts)


@pytest.mark.parametrize(("floor", "expected"), [(None, ["ghost", "id_switch"]), (0, 1), (1, 1)])
def test_every_job_gets_at_least_its_floor_of_items(sync_env: Any, floor: int | None, expected: Any) -> None:
    standin, _task_id, _jobs, make_cfg, make_api, store, _ = sync_env
    review: dict[str, Any] = {"frame_budget": None}
    if floor is not None:
        review["min_items_per_job"] = floor
    cfg = make_cfg(review=review)
    summary = run_sync(make_api(cfg), store, cfg, report=False)
    assert summary.ok, summary.to_json()
    kinds = issue_kinds(standin)
    if isinstance(expected, int):
        assert len(kinds) == expected  # the frame budget alone: one item
    else:
        assert kinds == expected
