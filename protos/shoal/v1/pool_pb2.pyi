import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import certificate_pb2 as _certificate_pb2
from shoal.v1 import common_pb2 as _common_pb2
from shoal.v1 import identity_pb2 as _identity_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PoolState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POOL_STATE_UNSPECIFIED: _ClassVar[PoolState]
    POOL_STATE_ACTIVE: _ClassVar[PoolState]
    POOL_STATE_DELETING: _ClassVar[PoolState]

class AllocationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALLOCATION_STATE_UNSPECIFIED: _ClassVar[AllocationState]
    ALLOCATION_STATE_STEADY: _ClassVar[AllocationState]
    ALLOCATION_STATE_RESIZING: _ClassVar[AllocationState]
    ALLOCATION_STATE_STOPPING: _ClassVar[AllocationState]

class NodeDeallocationOption(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_DEALLOCATION_OPTION_UNSPECIFIED: _ClassVar[NodeDeallocationOption]
    NODE_DEALLOCATION_OPTION_REQUEUE: _ClassVar[NodeDeallocationOption]
    NODE_DEALLOCATION_OPTION_TERMINATE: _ClassVar[NodeDeallocationOption]
    NODE_DEALLOCATION_OPTION_TASK_COMPLETION: _ClassVar[NodeDeallocationOption]
    NODE_DEALLOCATION_OPTION_RETAINED_DATA: _ClassVar[NodeDeallocationOption]

class NodeFillType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_FILL_TYPE_UNSPECIFIED: _ClassVar[NodeFillType]
    NODE_FILL_TYPE_SPREAD: _ClassVar[NodeFillType]
    NODE_FILL_TYPE_PACK: _ClassVar[NodeFillType]

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATE_UNSPECIFIED: _ClassVar[NodeState]
    NODE_STATE_CREATING: _ClassVar[NodeState]
    NODE_STATE_STARTING: _ClassVar[NodeState]
    NODE_STATE_WAITING_FOR_START_TASK: _ClassVar[NodeState]
    NODE_STATE_START_TASK_FAILED: _ClassVar[NodeState]
    NODE_STATE_IDLE: _ClassVar[NodeState]
    NODE_STATE_RUNNING: _ClassVar[NodeState]
    NODE_STATE_UNKNOWN: _ClassVar[NodeState]
    NODE_STATE_LEAVING_POOL: _ClassVar[NodeState]
    NODE_STATE_OFFLINE: _ClassVar[NodeState]
    NODE_STATE_REBOOTING: _ClassVar[NodeState]
    NODE_STATE_REIMAGING: _ClassVar[NodeState]
    NODE_STATE_UNUSABLE: _ClassVar[NodeState]
    NODE_STATE_PREEMPTED: _ClassVar[NodeState]

class SchedulingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEDULING_STATE_UNSPECIFIED: _ClassVar[SchedulingState]
    SCHEDULING_STATE_ENABLED: _ClassVar[SchedulingState]
    SCHEDULING_STATE_DISABLED: _ClassVar[SchedulingState]

class DisableNodeSchedulingOption(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISABLE_NODE_SCHEDULING_OPTION_UNSPECIFIED: _ClassVar[DisableNodeSchedulingOption]
    DISABLE_NODE_SCHEDULING_OPTION_REQUEUE: _ClassVar[DisableNodeSchedulingOption]
    DISABLE_NODE_SCHEDULING_OPTION_TERMINATE: _ClassVar[DisableNodeSchedulingOption]
    DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION: _ClassVar[DisableNodeSchedulingOption]
POOL_STATE_UNSPECIFIED: PoolState
POOL_STATE_ACTIVE: PoolState
POOL_STATE_DELETING: PoolState
ALLOCATION_STATE_UNSPECIFIED: AllocationState
ALLOCATION_STATE_STEADY: AllocationState
ALLOCATION_STATE_RESIZING: AllocationState
ALLOCATION_STATE_STOPPING: AllocationState
NODE_DEALLOCATION_OPTION_UNSPECIFIED: NodeDeallocationOption
NODE_DEALLOCATION_OPTION_REQUEUE: NodeDeallocationOption
NODE_DEALLOCATION_OPTION_TERMINATE: NodeDeallocationOption
NODE_DEALLOCATION_OPTION_TASK_COMPLETION: NodeDeallocationOption
NODE_DEALLOCATION_OPTION_RETAINED_DATA: NodeDeallocationOption
NODE_FILL_TYPE_UNSPECIFIED: NodeFillType
NODE_FILL_TYPE_SPREAD: NodeFillType
NODE_FILL_TYPE_PACK: NodeFillType
NODE_STATE_UNSPECIFIED: NodeState
NODE_STATE_CREATING: NodeState
NODE_STATE_STARTING: NodeState
NODE_STATE_WAITING_FOR_START_TASK: NodeState
NODE_STATE_START_TASK_FAILED: NodeState
NODE_STATE_IDLE: NodeState
NODE_STATE_RUNNING: NodeState
NODE_STATE_UNKNOWN: NodeState
NODE_STATE_LEAVING_POOL: NodeState
NODE_STATE_OFFLINE: NodeState
NODE_STATE_REBOOTING: NodeState
NODE_STATE_REIMAGING: NodeState
NODE_STATE_UNUSABLE: NodeState
NODE_STATE_PREEMPTED: NodeState
SCHEDULING_STATE_UNSPECIFIED: SchedulingState
SCHEDULING_STATE_ENABLED: SchedulingState
SCHEDULING_STATE_DISABLED: SchedulingState
DISABLE_NODE_SCHEDULING_OPTION_UNSPECIFIED: DisableNodeSchedulingOption
DISABLE_NODE_SCHEDULING_OPTION_REQUEUE: DisableNodeSchedulingOption
DISABLE_NODE_SCHEDULING_OPTION_TERMINATE: DisableNodeSchedulingOption
DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION: DisableNodeSchedulingOption

class Pool(_message.Message):
    __slots__ = ("name", "id", "display_name", "target_nodes", "task_slots_per_node", "start_task", "enable_inter_node_communication", "provider", "metadata", "user_accounts", "certificate_references", "resize_timeout", "target_low_priority_nodes", "enable_auto_scale", "auto_scale_formula", "auto_scale_evaluation_interval", "task_scheduling_policy", "state", "allocation_state", "current_nodes", "creation_time", "state_transition_time", "etag", "account", "resize_errors", "allocation_state_transition_time", "current_low_priority_nodes", "auto_scale_run", "application_package_references", "auto_pool_owner", "container_configuration")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODES_FIELD_NUMBER: _ClassVar[int]
    TASK_SLOTS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    START_TASK_FIELD_NUMBER: _ClassVar[int]
    ENABLE_INTER_NODE_COMMUNICATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    USER_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    RESIZE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_LOW_PRIORITY_NODES_FIELD_NUMBER: _ClassVar[int]
    ENABLE_AUTO_SCALE_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALE_FORMULA_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALE_EVALUATION_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TASK_SCHEDULING_POLICY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_NODES_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    RESIZE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOW_PRIORITY_NODES_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALE_RUN_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGE_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    AUTO_POOL_OWNER_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    display_name: str
    target_nodes: int
    task_slots_per_node: int
    start_task: _common_pb2.StartTask
    enable_inter_node_communication: bool
    provider: str
    metadata: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataItem]
    user_accounts: _containers.RepeatedCompositeFieldContainer[_identity_pb2.UserAccount]
    certificate_references: _containers.RepeatedCompositeFieldContainer[_certificate_pb2.CertificateReference]
    resize_timeout: _duration_pb2.Duration
    target_low_priority_nodes: int
    enable_auto_scale: bool
    auto_scale_formula: str
    auto_scale_evaluation_interval: _duration_pb2.Duration
    task_scheduling_policy: TaskSchedulingPolicy
    state: PoolState
    allocation_state: AllocationState
    current_nodes: int
    creation_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    etag: str
    account: str
    resize_errors: _containers.RepeatedCompositeFieldContainer[ResizeError]
    allocation_state_transition_time: _timestamp_pb2.Timestamp
    current_low_priority_nodes: int
    auto_scale_run: AutoScaleRun
    application_package_references: _containers.RepeatedCompositeFieldContainer[_common_pb2.ApplicationPackageReference]
    auto_pool_owner: str
    container_configuration: _common_pb2.ContainerConfiguration
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ..., target_nodes: _Optional[int] = ..., task_slots_per_node: _Optional[int] = ..., start_task: _Optional[_Union[_common_pb2.StartTask, _Mapping]] = ..., enable_inter_node_communication: _Optional[bool] = ..., provider: _Optional[str] = ..., metadata: _Optional[_Iterable[_Union[_common_pb2.MetadataItem, _Mapping]]] = ..., user_accounts: _Optional[_Iterable[_Union[_identity_pb2.UserAccount, _Mapping]]] = ..., certificate_references: _Optional[_Iterable[_Union[_certificate_pb2.CertificateReference, _Mapping]]] = ..., resize_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., target_low_priority_nodes: _Optional[int] = ..., enable_auto_scale: _Optional[bool] = ..., auto_scale_formula: _Optional[str] = ..., auto_scale_evaluation_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., task_scheduling_policy: _Optional[_Union[TaskSchedulingPolicy, _Mapping]] = ..., state: _Optional[_Union[PoolState, str]] = ..., allocation_state: _Optional[_Union[AllocationState, str]] = ..., current_nodes: _Optional[int] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., account: _Optional[str] = ..., resize_errors: _Optional[_Iterable[_Union[ResizeError, _Mapping]]] = ..., allocation_state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_low_priority_nodes: _Optional[int] = ..., auto_scale_run: _Optional[_Union[AutoScaleRun, _Mapping]] = ..., application_package_references: _Optional[_Iterable[_Union[_common_pb2.ApplicationPackageReference, _Mapping]]] = ..., auto_pool_owner: _Optional[str] = ..., container_configuration: _Optional[_Union[_common_pb2.ContainerConfiguration, _Mapping]] = ...) -> None: ...

class TaskSchedulingPolicy(_message.Message):
    __slots__ = ("node_fill_type",)
    NODE_FILL_TYPE_FIELD_NUMBER: _ClassVar[int]
    node_fill_type: NodeFillType
    def __init__(self, node_fill_type: _Optional[_Union[NodeFillType, str]] = ...) -> None: ...

class AutoScaleRunError(_message.Message):
    __slots__ = ("code", "message", "values", "line", "column")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    values: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataItem]
    line: int
    column: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_common_pb2.MetadataItem, _Mapping]]] = ..., line: _Optional[int] = ..., column: _Optional[int] = ...) -> None: ...

class AutoScaleRun(_message.Message):
    __slots__ = ("timestamp", "results", "error")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    results: str
    error: AutoScaleRunError
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., results: _Optional[str] = ..., error: _Optional[_Union[AutoScaleRunError, _Mapping]] = ...) -> None: ...

class ResizeError(_message.Message):
    __slots__ = ("code", "message", "values")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    values: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataItem]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_common_pb2.MetadataItem, _Mapping]]] = ...) -> None: ...

class RecentTask(_message.Message):
    __slots__ = ("job_id", "task_id", "attempt", "state", "exit_code")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    task_id: str
    attempt: int
    state: str
    exit_code: int
    def __init__(self, job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[str] = ..., exit_code: _Optional[int] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("name", "id", "pool_id", "state", "ip_address", "task_slots", "running_task_slots", "total_tasks_run", "total_tasks_succeeded", "cores", "memory_bytes", "state_transition_time", "last_heartbeat_time", "start_task_info", "recent_tasks", "root_directory", "cpu_percent", "task_user_isolation", "agent_user", "certificate_references", "scheduling_state", "is_dedicated", "allocation_time", "last_boot_time", "running_tasks_count", "agent_version", "errors", "container_engine", "metrics_address")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TASKS_RUN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TASKS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TASK_INFO_FIELD_NUMBER: _ClassVar[int]
    RECENT_TASKS_FIELD_NUMBER: _ClassVar[int]
    ROOT_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    TASK_USER_ISOLATION_FIELD_NUMBER: _ClassVar[int]
    AGENT_USER_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_STATE_FIELD_NUMBER: _ClassVar[int]
    IS_DEDICATED_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_BOOT_TIME_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_COUNT_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ENGINE_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    pool_id: str
    state: NodeState
    ip_address: str
    task_slots: int
    running_task_slots: int
    total_tasks_run: int
    total_tasks_succeeded: int
    cores: int
    memory_bytes: int
    state_transition_time: _timestamp_pb2.Timestamp
    last_heartbeat_time: _timestamp_pb2.Timestamp
    start_task_info: _common_pb2.StartTaskInfo
    recent_tasks: _containers.RepeatedCompositeFieldContainer[RecentTask]
    root_directory: str
    cpu_percent: float
    task_user_isolation: bool
    agent_user: str
    certificate_references: _containers.RepeatedCompositeFieldContainer[_certificate_pb2.CertificateReference]
    scheduling_state: SchedulingState
    is_dedicated: bool
    allocation_time: _timestamp_pb2.Timestamp
    last_boot_time: _timestamp_pb2.Timestamp
    running_tasks_count: int
    agent_version: str
    errors: _containers.RepeatedCompositeFieldContainer[NodeError]
    container_engine: str
    metrics_address: str
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., pool_id: _Optional[str] = ..., state: _Optional[_Union[NodeState, str]] = ..., ip_address: _Optional[str] = ..., task_slots: _Optional[int] = ..., running_task_slots: _Optional[int] = ..., total_tasks_run: _Optional[int] = ..., total_tasks_succeeded: _Optional[int] = ..., cores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_task_info: _Optional[_Union[_common_pb2.StartTaskInfo, _Mapping]] = ..., recent_tasks: _Optional[_Iterable[_Union[RecentTask, _Mapping]]] = ..., root_directory: _Optional[str] = ..., cpu_percent: _Optional[float] = ..., task_user_isolation: _Optional[bool] = ..., agent_user: _Optional[str] = ..., certificate_references: _Optional[_Iterable[_Union[_certificate_pb2.CertificateReference, _Mapping]]] = ..., scheduling_state: _Optional[_Union[SchedulingState, str]] = ..., is_dedicated: _Optional[bool] = ..., allocation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_boot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., running_tasks_count: _Optional[int] = ..., agent_version: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[NodeError, _Mapping]]] = ..., container_engine: _Optional[str] = ..., metrics_address: _Optional[str] = ...) -> None: ...

class NodeError(_message.Message):
    __slots__ = ("code", "message", "error_details")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    error_details: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataItem]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., error_details: _Optional[_Iterable[_Union[_common_pb2.MetadataItem, _Mapping]]] = ...) -> None: ...

class CreatePoolRequest(_message.Message):
    __slots__ = ("pool", "request_id")
    POOL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    request_id: str
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPoolsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPoolsResponse(_message.Message):
    __slots__ = ("pools", "next_page_token")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[Pool]
    next_page_token: str
    def __init__(self, pools: _Optional[_Iterable[_Union[Pool, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeletePoolRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class ResizePoolRequest(_message.Message):
    __slots__ = ("name", "target_nodes", "node_deallocation_option", "etag", "target_low_priority_nodes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODES_FIELD_NUMBER: _ClassVar[int]
    NODE_DEALLOCATION_OPTION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    TARGET_LOW_PRIORITY_NODES_FIELD_NUMBER: _ClassVar[int]
    name: str
    target_nodes: int
    node_deallocation_option: NodeDeallocationOption
    etag: str
    target_low_priority_nodes: int
    def __init__(self, name: _Optional[str] = ..., target_nodes: _Optional[int] = ..., node_deallocation_option: _Optional[_Union[NodeDeallocationOption, str]] = ..., etag: _Optional[str] = ..., target_low_priority_nodes: _Optional[int] = ...) -> None: ...

class EnableAutoScaleRequest(_message.Message):
    __slots__ = ("name", "auto_scale_formula", "auto_scale_evaluation_interval", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALE_FORMULA_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALE_EVALUATION_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    auto_scale_formula: str
    auto_scale_evaluation_interval: _duration_pb2.Duration
    etag: str
    def __init__(self, name: _Optional[str] = ..., auto_scale_formula: _Optional[str] = ..., auto_scale_evaluation_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class DisableAutoScaleRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class EvaluateAutoScaleRequest(_message.Message):
    __slots__ = ("name", "auto_scale_formula")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALE_FORMULA_FIELD_NUMBER: _ClassVar[int]
    name: str
    auto_scale_formula: str
    def __init__(self, name: _Optional[str] = ..., auto_scale_formula: _Optional[str] = ...) -> None: ...

class PreemptNodeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "state")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    state: NodeState
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[NodeState, str]] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes", "next_page_token")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    next_page_token: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListNodeFilesRequest(_message.Message):
    __slots__ = ("name", "path", "recursive")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    recursive: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class ListNodeFilesResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.NodeFile]
    def __init__(self, files: _Optional[_Iterable[_Union[_common_pb2.NodeFile, _Mapping]]] = ...) -> None: ...

class RemoveNodesRequest(_message.Message):
    __slots__ = ("name", "node_ids", "node_deallocation_option", "resize_timeout", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    NODE_DEALLOCATION_OPTION_FIELD_NUMBER: _ClassVar[int]
    RESIZE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    node_deallocation_option: NodeDeallocationOption
    resize_timeout: _duration_pb2.Duration
    etag: str
    def __init__(self, name: _Optional[str] = ..., node_ids: _Optional[_Iterable[str]] = ..., node_deallocation_option: _Optional[_Union[NodeDeallocationOption, str]] = ..., resize_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class StopPoolResizeRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class DisableNodeSchedulingRequest(_message.Message):
    __slots__ = ("name", "option")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    option: DisableNodeSchedulingOption
    def __init__(self, name: _Optional[str] = ..., option: _Optional[_Union[DisableNodeSchedulingOption, str]] = ...) -> None: ...

class EnableNodeSchedulingRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class NodeCounts(_message.Message):
    __slots__ = ("creating", "starting", "waiting_for_start_task", "start_task_failed", "idle", "running", "unknown", "leaving_pool", "offline", "rebooting", "reimaging", "unusable", "preempted", "total")
    CREATING_FIELD_NUMBER: _ClassVar[int]
    STARTING_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_START_TASK_FIELD_NUMBER: _ClassVar[int]
    START_TASK_FAILED_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    LEAVING_POOL_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    REBOOTING_FIELD_NUMBER: _ClassVar[int]
    REIMAGING_FIELD_NUMBER: _ClassVar[int]
    UNUSABLE_FIELD_NUMBER: _ClassVar[int]
    PREEMPTED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    creating: int
    starting: int
    waiting_for_start_task: int
    start_task_failed: int
    idle: int
    running: int
    unknown: int
    leaving_pool: int
    offline: int
    rebooting: int
    reimaging: int
    unusable: int
    preempted: int
    total: int
    def __init__(self, creating: _Optional[int] = ..., starting: _Optional[int] = ..., waiting_for_start_task: _Optional[int] = ..., start_task_failed: _Optional[int] = ..., idle: _Optional[int] = ..., running: _Optional[int] = ..., unknown: _Optional[int] = ..., leaving_pool: _Optional[int] = ..., offline: _Optional[int] = ..., rebooting: _Optional[int] = ..., reimaging: _Optional[int] = ..., unusable: _Optional[int] = ..., preempted: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class PoolNodeCounts(_message.Message):
    __slots__ = ("pool_id", "dedicated", "low_priority")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_FIELD_NUMBER: _ClassVar[int]
    LOW_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    dedicated: NodeCounts
    low_priority: NodeCounts
    def __init__(self, pool_id: _Optional[str] = ..., dedicated: _Optional[_Union[NodeCounts, _Mapping]] = ..., low_priority: _Optional[_Union[NodeCounts, _Mapping]] = ...) -> None: ...

class ListPoolNodeCountsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPoolNodeCountsResponse(_message.Message):
    __slots__ = ("pools", "next_page_token")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[PoolNodeCounts]
    next_page_token: str
    def __init__(self, pools: _Optional[_Iterable[_Union[PoolNodeCounts, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPoolStatisticsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PoolStatistics(_message.Message):
    __slots__ = ("usage", "dedicated_node_seconds", "low_priority_node_seconds", "dedicated_core_seconds", "low_priority_core_seconds", "last_update_time")
    USAGE_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_NODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOW_PRIORITY_NODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_CORE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOW_PRIORITY_CORE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    usage: _common_pb2.UsageStatistics
    dedicated_node_seconds: float
    low_priority_node_seconds: float
    dedicated_core_seconds: float
    low_priority_core_seconds: float
    last_update_time: _timestamp_pb2.Timestamp
    def __init__(self, usage: _Optional[_Union[_common_pb2.UsageStatistics, _Mapping]] = ..., dedicated_node_seconds: _Optional[float] = ..., low_priority_node_seconds: _Optional[float] = ..., dedicated_core_seconds: _Optional[float] = ..., low_priority_core_seconds: _Optional[float] = ..., last_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RebootNodeRequest(_message.Message):
    __slots__ = ("name", "option")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    option: NodeDeallocationOption
    def __init__(self, name: _Optional[str] = ..., option: _Optional[_Union[NodeDeallocationOption, str]] = ...) -> None: ...

class ReimageNodeRequest(_message.Message):
    __slots__ = ("name", "option")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    option: NodeDeallocationOption
    def __init__(self, name: _Optional[str] = ..., option: _Optional[_Union[NodeDeallocationOption, str]] = ...) -> None: ...

class UpdatePoolRequest(_message.Message):
    __slots__ = ("pool", "update_mask", "etag")
    POOL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class UploadNodeLogsRequest(_message.Message):
    __slots__ = ("name", "container", "start_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    container: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., container: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadNodeLogsResponse(_message.Message):
    __slots__ = ("virtual_directory_name", "number_of_files_uploaded")
    VIRTUAL_DIRECTORY_NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_FILES_UPLOADED_FIELD_NUMBER: _ClassVar[int]
    virtual_directory_name: str
    number_of_files_uploaded: int
    def __init__(self, virtual_directory_name: _Optional[str] = ..., number_of_files_uploaded: _Optional[int] = ...) -> None: ...

class TerminalSize(_message.Message):
    __slots__ = ("rows", "columns")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    columns: int
    def __init__(self, rows: _Optional[int] = ..., columns: _Optional[int] = ...) -> None: ...

class ExecNodeStart(_message.Message):
    __slots__ = ("name", "argv", "tty", "size", "environment", "elevated")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    ELEVATED_FIELD_NUMBER: _ClassVar[int]
    name: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    tty: bool
    size: TerminalSize
    environment: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    elevated: bool
    def __init__(self, name: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., tty: _Optional[bool] = ..., size: _Optional[_Union[TerminalSize, _Mapping]] = ..., environment: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., elevated: _Optional[bool] = ...) -> None: ...

class ExecNodeRequest(_message.Message):
    __slots__ = ("start", "stdin", "stdin_eof", "resize", "signal")
    START_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    STDIN_EOF_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    start: ExecNodeStart
    stdin: bytes
    stdin_eof: bool
    resize: TerminalSize
    signal: int
    def __init__(self, start: _Optional[_Union[ExecNodeStart, _Mapping]] = ..., stdin: _Optional[bytes] = ..., stdin_eof: _Optional[bool] = ..., resize: _Optional[_Union[TerminalSize, _Mapping]] = ..., signal: _Optional[int] = ...) -> None: ...

class ExecNodeExit(_message.Message):
    __slots__ = ("exit_code", "signal")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    signal: int
    def __init__(self, exit_code: _Optional[int] = ..., signal: _Optional[int] = ...) -> None: ...

class ExecNodeResponse(_message.Message):
    __slots__ = ("stdout", "stderr", "exit")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    exit: ExecNodeExit
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit: _Optional[_Union[ExecNodeExit, _Mapping]] = ...) -> None: ...

class NodeUser(_message.Message):
    __slots__ = ("name", "is_admin", "expiry_time", "password", "ssh_public_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IS_ADMIN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_TIME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    is_admin: bool
    expiry_time: _timestamp_pb2.Timestamp
    password: str
    ssh_public_key: str
    def __init__(self, name: _Optional[str] = ..., is_admin: _Optional[bool] = ..., expiry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., password: _Optional[str] = ..., ssh_public_key: _Optional[str] = ...) -> None: ...

class AddNodeUserRequest(_message.Message):
    __slots__ = ("parent", "user")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    parent: str
    user: NodeUser
    def __init__(self, parent: _Optional[str] = ..., user: _Optional[_Union[NodeUser, _Mapping]] = ...) -> None: ...

class UpdateNodeUserRequest(_message.Message):
    __slots__ = ("name", "user")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    name: str
    user: NodeUser
    def __init__(self, name: _Optional[str] = ..., user: _Optional[_Union[NodeUser, _Mapping]] = ...) -> None: ...

class DeleteNodeUserRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteNodeUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodeUsersRequest(_message.Message):
    __slots__ = ("parent",)
    PARENT_FIELD_NUMBER: _ClassVar[int]
    parent: str
    def __init__(self, parent: _Optional[str] = ...) -> None: ...

class ListNodeUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[NodeUser]
    def __init__(self, users: _Optional[_Iterable[_Union[NodeUser, _Mapping]]] = ...) -> None: ...

class GetRemoteLoginSettingsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoteLoginSettings(_message.Message):
    __slots__ = ("remote_login_ip_address", "remote_login_port", "available", "reason")
    REMOTE_LOGIN_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REMOTE_LOGIN_PORT_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    remote_login_ip_address: str
    remote_login_port: int
    available: bool
    reason: str
    def __init__(self, remote_login_ip_address: _Optional[str] = ..., remote_login_port: _Optional[int] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchNodesRequest(_message.Message):
    __slots__ = ("parent",)
    PARENT_FIELD_NUMBER: _ClassVar[int]
    parent: str
    def __init__(self, parent: _Optional[str] = ...) -> None: ...

class WatchNodesResponse(_message.Message):
    __slots__ = ("nodes", "removed_node_ids", "initial", "initial_complete")
    NODES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    INITIAL_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    removed_node_ids: _containers.RepeatedScalarFieldContainer[str]
    initial: bool
    initial_complete: bool
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., removed_node_ids: _Optional[_Iterable[str]] = ..., initial: _Optional[bool] = ..., initial_complete: _Optional[bool] = ...) -> None: ...

class ReadNodeFileRequest(_message.Message):
    __slots__ = ("name", "path", "offset", "follow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    offset: int
    follow: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class GetNodeFilePropertiesRequest(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DeleteNodeFileRequest(_message.Message):
    __slots__ = ("name", "path", "recursive")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    recursive: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class DeleteNodeFileResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
