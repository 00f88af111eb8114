"""The client's auto pool types: to and from their messages, and what they refuse before any call."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shoal.client import AutoPoolSpecification, InvalidArgument, Job, PoolLifetime, StartTaskSpec
from shoal.v1 import common_pb2, job_pb2, pool_pb2


def test_a_spec_goes_to_its_message_and_back() -> None:
    spec = AutoPoolSpecification(
        auto_pool_id_prefix="render-",
        keep_alive=True,
        target_nodes=2,
        task_slots_per_node=4,
        start_task=StartTaskSpec(command_line="/bin/true"),
        auto_scale_evaluation_interval=30,
        metadata={"team": "vfx"},
    )
    msg = spec.to_proto()
    assert (msg.auto_pool_id_prefix, msg.keep_alive) == ("render-", True)
    assert msg.pool_lifetime_option == job_pb2.POOL_LIFETIME_OPTION_JOB
    assert (msg.pool.id, msg.pool.target_nodes, msg.pool.task_slots_per_node) == ("", 2, 4)
    assert msg.pool.start_task.command_line == "/bin/true"
    back = AutoPoolSpecification.from_proto(msg)
    assert back.auto_scale_evaluation_interval == timedelta(seconds=30)
    assert back == AutoPoolSpecification(**{**spec.__dict__, "auto_scale_evaluation_interval": timedelta(seconds=30)})


def test_the_lifetime_and_a_whole_pool() -> None:
    shared = AutoPoolSpecification(lifetime="JobSchedule").to_proto()
    assert shared.pool_lifetime_option == job_pb2.POOL_LIFETIME_OPTION_JOB_SCHEDULE
    assert AutoPoolSpecification.from_proto(shared).lifetime == PoolLifetime.JOB_SCHEDULE
    with pytest.raises(InvalidArgument) as e:
        AutoPoolSpecification(lifetime="forever").to_proto()
    assert e.value.field_violations[0][0] == "auto_pool.lifetime"
    whole = pool_pb2.Pool(target_nodes=3, enable_inter_node_communication=True)
    assert AutoPoolSpecification(pool=whole).to_proto().pool == whole
    with pytest.raises(InvalidArgument) as e:
        AutoPoolSpecification(pool=whole, target_nodes=1).to_proto()
    assert [f for f, _ in e.value.field_violations] == ["auto_pool.target_nodes"]


def test_a_job_shows_its_pool_and_scheduling_error() -> None:
    msg = job_pb2.Job(id="j", auto_pool_specification=AutoPoolSpecification(target_nodes=1).to_proto())
    msg.execution_info.scheduling_error.CopyFrom(
        job_pb2.JobSchedulingError(
            category=common_pb2.ERROR_CATEGORY_USER_ERROR,
            code="AutoPoolCreationFailedWithQuotaReached",
            message="too many pools",
            details=[common_pb2.MetadataItem(name="reason", value="POOL_QUOTA_REACHED")],
        )
    )
    job = Job.from_proto(msg)
    assert job.auto_pool is not None and job.auto_pool.target_nodes == 1
    assert job.scheduling_error is not None
    assert (job.scheduling_error.code, job.scheduling_error.category) == (
        "AutoPoolCreationFailedWithQuotaReached",
        "usererror",
    )
    assert job.scheduling_error.details == {"reason": "POOL_QUOTA_REACHED"}
    assert Job.from_proto(job_pb2.Job(id="k", pool_id="p")).scheduling_error is None
