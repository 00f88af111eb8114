import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from shoal.v1 import certificate_pb2 as _certificate_pb2
from shoal.v1 import common_pb2 as _common_pb2
from shoal.v1 import identity_pb2 as _identity_pb2
from shoal.v1 import pool_pb2 as _pool_pb2
from shoal.v1 import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_EVENT_KIND_UNSPECIFIED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_RUNNING: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_COMPLETED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_COORDINATED: _ClassVar[TaskEventKind]

class JobTaskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_TASK_KIND_UNSPECIFIED: _ClassVar[JobTaskKind]
    JOB_TASK_KIND_PREPARATION: _ClassVar[JobTaskKind]
    JOB_TASK_KIND_RELEASE: _ClassVar[JobTaskKind]

class FileScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_SCOPE_UNSPECIFIED: _ClassVar[FileScope]
    FILE_SCOPE_NODE: _ClassVar[FileScope]
    FILE_SCOPE_TASK: _ClassVar[FileScope]
TASK_EVENT_KIND_UNSPECIFIED: TaskEventKind
TASK_EVENT_KIND_RUNNING: TaskEventKind
TASK_EVENT_KIND_COMPLETED: TaskEventKind
TASK_EVENT_KIND_COORDINATED: TaskEventKind
JOB_TASK_KIND_UNSPECIFIED: JobTaskKind
JOB_TASK_KIND_PREPARATION: JobTaskKind
JOB_TASK_KIND_RELEASE: JobTaskKind
FILE_SCOPE_UNSPECIFIED: FileScope
FILE_SCOPE_NODE: FileScope
FILE_SCOPE_TASK: FileScope

class AttemptRef(_message.Message):
    __slots__ = ("job_id", "task_id", "attempt", "instance")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    task_id: str
    attempt: int
    instance: int
    def __init__(self, job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., instance: _Optional[int] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("event_id", "attempt", "kind", "time", "exit_code", "failure_info", "result", "start_time", "task_root_directory", "job_task", "retry_count", "stats", "container_info")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    TASK_ROOT_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    JOB_TASK_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_INFO_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    attempt: AttemptRef
    kind: TaskEventKind
    time: _timestamp_pb2.Timestamp
    exit_code: int
    failure_info: _common_pb2.FailureInfo
    result: _common_pb2.TaskExecutionResult
    start_time: _timestamp_pb2.Timestamp
    task_root_directory: str
    job_task: JobTaskKind
    retry_count: int
    stats: _common_pb2.TaskStatistics
    container_info: _common_pb2.TaskContainerExecutionInfo
    def __init__(self, event_id: _Optional[int] = ..., attempt: _Optional[_Union[AttemptRef, _Mapping]] = ..., kind: _Optional[_Union[TaskEventKind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., failure_info: _Optional[_Union[_common_pb2.FailureInfo, _Mapping]] = ..., result: _Optional[_Union[_common_pb2.TaskExecutionResult, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_root_directory: _Optional[str] = ..., job_task: _Optional[_Union[JobTaskKind, str]] = ..., retry_count: _Optional[int] = ..., stats: _Optional[_Union[_common_pb2.TaskStatistics, _Mapping]] = ..., container_info: _Optional[_Union[_common_pb2.TaskContainerExecutionInfo, _Mapping]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("node_id", "pool_id", "ip_address", "node_service_port", "cores", "memory_bytes", "root_directory", "boot_id", "running", "pending_events", "start_task_succeeded", "prepared_jobs", "released_jobs", "exec_port", "task_user_isolation", "agent_user", "agent_version", "errors", "ssh_port", "restart_id", "container_engine", "images_ready", "metrics_address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_SERVICE_PORT_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    ROOT_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PENDING_EVENTS_FIELD_NUMBER: _ClassVar[int]
    START_TASK_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    PREPARED_JOBS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_JOBS_FIELD_NUMBER: _ClassVar[int]
    EXEC_PORT_FIELD_NUMBER: _ClassVar[int]
    TASK_USER_ISOLATION_FIELD_NUMBER: _ClassVar[int]
    AGENT_USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SSH_PORT_FIELD_NUMBER: _ClassVar[int]
    RESTART_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ENGINE_FIELD_NUMBER: _ClassVar[int]
    IMAGES_READY_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    pool_id: str
    ip_address: str
    node_service_port: int
    cores: int
    memory_bytes: int
    root_directory: str
    boot_id: str
    running: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    pending_events: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    start_task_succeeded: bool
    prepared_jobs: _containers.RepeatedScalarFieldContainer[str]
    released_jobs: _containers.RepeatedScalarFieldContainer[str]
    exec_port: int
    task_user_isolation: bool
    agent_user: str
    agent_version: str
    errors: _containers.RepeatedCompositeFieldContainer[_pool_pb2.NodeError]
    ssh_port: int
    restart_id: str
    container_engine: str
    images_ready: bool
    metrics_address: str
    def __init__(self, node_id: _Optional[str] = ..., pool_id: _Optional[str] = ..., ip_address: _Optional[str] = ..., node_service_port: _Optional[int] = ..., cores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., root_directory: _Optional[str] = ..., boot_id: _Optional[str] = ..., running: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., pending_events: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., start_task_succeeded: _Optional[bool] = ..., prepared_jobs: _Optional[_Iterable[str]] = ..., released_jobs: _Optional[_Iterable[str]] = ..., exec_port: _Optional[int] = ..., task_user_isolation: _Optional[bool] = ..., agent_user: _Optional[str] = ..., agent_version: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[_pool_pb2.NodeError, _Mapping]]] = ..., ssh_port: _Optional[int] = ..., restart_id: _Optional[str] = ..., container_engine: _Optional[str] = ..., images_ready: _Optional[bool] = ..., metrics_address: _Optional[str] = ...) -> None: ...

class NodeHealth(_message.Message):
    __slots__ = ("errors", "images_ready")
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_READY_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[_pool_pb2.NodeError]
    images_ready: bool
    def __init__(self, errors: _Optional[_Iterable[_Union[_pool_pb2.NodeError, _Mapping]]] = ..., images_ready: _Optional[bool] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("cpu_percent", "memory_used_bytes", "running_task_slots", "disk_used_bytes", "disk_read_bytes", "disk_write_bytes", "disk_read_ops", "disk_write_ops", "network_in_bytes", "network_out_bytes")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    DISK_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_READ_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_READ_OPS_FIELD_NUMBER: _ClassVar[int]
    DISK_WRITE_OPS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_OUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_used_bytes: int
    running_task_slots: int
    disk_used_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int
    disk_read_ops: int
    disk_write_ops: int
    network_in_bytes: int
    network_out_bytes: int
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_used_bytes: _Optional[int] = ..., running_task_slots: _Optional[int] = ..., disk_used_bytes: _Optional[int] = ..., disk_read_bytes: _Optional[int] = ..., disk_write_bytes: _Optional[int] = ..., disk_read_ops: _Optional[int] = ..., disk_write_ops: _Optional[int] = ..., network_in_bytes: _Optional[int] = ..., network_out_bytes: _Optional[int] = ...) -> None: ...

class TaskEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ...) -> None: ...

class StartTaskReport(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: _common_pb2.StartTaskInfo
    def __init__(self, info: _Optional[_Union[_common_pb2.StartTaskInfo, _Mapping]] = ...) -> None: ...

class CommandAck(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    def __init__(self, command_id: _Optional[int] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "task_events", "start_task", "ack", "node_health", "commands_acked_up_to")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    TASK_EVENTS_FIELD_NUMBER: _ClassVar[int]
    START_TASK_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    NODE_HEALTH_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_ACKED_UP_TO_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    task_events: TaskEvents
    start_task: StartTaskReport
    ack: CommandAck
    node_health: NodeHealth
    commands_acked_up_to: int
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., task_events: _Optional[_Union[TaskEvents, _Mapping]] = ..., start_task: _Optional[_Union[StartTaskReport, _Mapping]] = ..., ack: _Optional[_Union[CommandAck, _Mapping]] = ..., node_health: _Optional[_Union[NodeHealth, _Mapping]] = ..., commands_acked_up_to: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("node_id", "pool_id", "heartbeat_interval_seconds", "start_task", "run_start_task", "task_slots", "account", "credential", "user_accounts", "certificates", "node_users", "is_dedicated", "packages", "containers")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    START_TASK_FIELD_NUMBER: _ClassVar[int]
    RUN_START_TASK_FIELD_NUMBER: _ClassVar[int]
    TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    USER_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    NODE_USERS_FIELD_NUMBER: _ClassVar[int]
    IS_DEDICATED_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    pool_id: str
    heartbeat_interval_seconds: float
    start_task: _common_pb2.StartTask
    run_start_task: bool
    task_slots: int
    account: str
    credential: str
    user_accounts: _containers.RepeatedCompositeFieldContainer[_identity_pb2.UserAccount]
    certificates: _containers.RepeatedCompositeFieldContainer[NodeCertificate]
    node_users: _containers.RepeatedCompositeFieldContainer[NodeUserSpec]
    is_dedicated: bool
    packages: _containers.RepeatedCompositeFieldContainer[PackageDeployment]
    containers: _common_pb2.ContainerConfiguration
    def __init__(self, node_id: _Optional[str] = ..., pool_id: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[float] = ..., start_task: _Optional[_Union[_common_pb2.StartTask, _Mapping]] = ..., run_start_task: _Optional[bool] = ..., task_slots: _Optional[int] = ..., account: _Optional[str] = ..., credential: _Optional[str] = ..., user_accounts: _Optional[_Iterable[_Union[_identity_pb2.UserAccount, _Mapping]]] = ..., certificates: _Optional[_Iterable[_Union[NodeCertificate, _Mapping]]] = ..., node_users: _Optional[_Iterable[_Union[NodeUserSpec, _Mapping]]] = ..., is_dedicated: _Optional[bool] = ..., packages: _Optional[_Iterable[_Union[PackageDeployment, _Mapping]]] = ..., containers: _Optional[_Union[_common_pb2.ContainerConfiguration, _Mapping]] = ...) -> None: ...

class PackageDeployment(_message.Message):
    __slots__ = ("application_id", "version", "default_version", "sha256", "size", "error", "reference")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    version: str
    default_version: bool
    sha256: str
    size: int
    error: str
    reference: str
    def __init__(self, application_id: _Optional[str] = ..., version: _Optional[str] = ..., default_version: _Optional[bool] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., error: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class DeployPackages(_message.Message):
    __slots__ = ("command_id", "packages")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    packages: _containers.RepeatedCompositeFieldContainer[PackageDeployment]
    def __init__(self, command_id: _Optional[int] = ..., packages: _Optional[_Iterable[_Union[PackageDeployment, _Mapping]]] = ...) -> None: ...

class DownloadPackageRequest(_message.Message):
    __slots__ = ("application_id", "version", "sha256")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    version: str
    sha256: str
    def __init__(self, application_id: _Optional[str] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class NodeUserSpec(_message.Message):
    __slots__ = ("name", "is_admin", "expiry_time", "password_hash", "ssh_public_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IS_ADMIN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_TIME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    is_admin: bool
    expiry_time: _timestamp_pb2.Timestamp
    password_hash: str
    ssh_public_key: str
    def __init__(self, name: _Optional[str] = ..., is_admin: _Optional[bool] = ..., expiry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., password_hash: _Optional[str] = ..., ssh_public_key: _Optional[str] = ...) -> None: ...

class NodeUsers(_message.Message):
    __slots__ = ("command_id", "users")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    users: _containers.RepeatedCompositeFieldContainer[NodeUserSpec]
    def __init__(self, command_id: _Optional[int] = ..., users: _Optional[_Iterable[_Union[NodeUserSpec, _Mapping]]] = ...) -> None: ...

class Restart(_message.Message):
    __slots__ = ("command_id", "restart_id", "reimage", "wait_for_retention", "keep_preparations", "reason")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    RESTART_ID_FIELD_NUMBER: _ClassVar[int]
    REIMAGE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_RETENTION_FIELD_NUMBER: _ClassVar[int]
    KEEP_PREPARATIONS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    restart_id: str
    reimage: bool
    wait_for_retention: bool
    keep_preparations: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, command_id: _Optional[int] = ..., restart_id: _Optional[str] = ..., reimage: _Optional[bool] = ..., wait_for_retention: _Optional[bool] = ..., keep_preparations: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class NodeCertificate(_message.Message):
    __slots__ = ("thumbprint", "certificate", "private_key", "visibility")
    THUMBPRINT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    thumbprint: str
    certificate: bytes
    private_key: bytes
    visibility: _containers.RepeatedScalarFieldContainer[_certificate_pb2.CertificateVisibility]
    def __init__(self, thumbprint: _Optional[str] = ..., certificate: _Optional[bytes] = ..., private_key: _Optional[bytes] = ..., visibility: _Optional[_Iterable[_Union[_certificate_pb2.CertificateVisibility, str]]] = ...) -> None: ...

class MultiInstance(_message.Message):
    __slots__ = ("instance_index", "number_of_instances", "host_list", "agent_addresses", "coordination_command_line", "common_resource_files", "task_shared_dir", "exec_secret")
    INSTANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    HOST_LIST_FIELD_NUMBER: _ClassVar[int]
    AGENT_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    COORDINATION_COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    COMMON_RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    TASK_SHARED_DIR_FIELD_NUMBER: _ClassVar[int]
    EXEC_SECRET_FIELD_NUMBER: _ClassVar[int]
    instance_index: int
    number_of_instances: int
    host_list: _containers.RepeatedScalarFieldContainer[str]
    agent_addresses: _containers.RepeatedScalarFieldContainer[str]
    coordination_command_line: str
    common_resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    task_shared_dir: str
    exec_secret: str
    def __init__(self, instance_index: _Optional[int] = ..., number_of_instances: _Optional[int] = ..., host_list: _Optional[_Iterable[str]] = ..., agent_addresses: _Optional[_Iterable[str]] = ..., coordination_command_line: _Optional[str] = ..., common_resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ..., task_shared_dir: _Optional[str] = ..., exec_secret: _Optional[str] = ...) -> None: ...

class JobTaskSpec(_message.Message):
    __slots__ = ("job_id", "id", "command_line", "environment_settings", "resource_files", "max_wall_clock_seconds", "retention_seconds", "max_task_retry_count", "wait_for_success", "user_identity", "container")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    id: str
    command_line: str
    environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    max_wall_clock_seconds: float
    retention_seconds: float
    max_task_retry_count: int
    wait_for_success: bool
    user_identity: _identity_pb2.UserIdentity
    container: _common_pb2.TaskContainerSettings
    def __init__(self, job_id: _Optional[str] = ..., id: _Optional[str] = ..., command_line: _Optional[str] = ..., environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ..., max_wall_clock_seconds: _Optional[float] = ..., retention_seconds: _Optional[float] = ..., max_task_retry_count: _Optional[int] = ..., wait_for_success: _Optional[bool] = ..., user_identity: _Optional[_Union[_identity_pb2.UserIdentity, _Mapping]] = ..., container: _Optional[_Union[_common_pb2.TaskContainerSettings, _Mapping]] = ...) -> None: ...

class TaskAssignment(_message.Message):
    __slots__ = ("attempt", "pool_id", "command_line", "environment_settings", "resource_files", "output_files", "max_wall_clock_seconds", "retention_seconds", "required_slots", "multi_instance", "job_preparation", "user_identity", "packages", "container")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SLOTS_FIELD_NUMBER: _ClassVar[int]
    MULTI_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    JOB_PREPARATION_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    attempt: AttemptRef
    pool_id: str
    command_line: str
    environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    output_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.OutputFile]
    max_wall_clock_seconds: float
    retention_seconds: float
    required_slots: int
    multi_instance: MultiInstance
    job_preparation: JobTaskSpec
    user_identity: _identity_pb2.UserIdentity
    packages: _containers.RepeatedCompositeFieldContainer[PackageDeployment]
    container: _common_pb2.TaskContainerSettings
    def __init__(self, attempt: _Optional[_Union[AttemptRef, _Mapping]] = ..., pool_id: _Optional[str] = ..., command_line: _Optional[str] = ..., environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[_common_pb2.OutputFile, _Mapping]]] = ..., max_wall_clock_seconds: _Optional[float] = ..., retention_seconds: _Optional[float] = ..., required_slots: _Optional[int] = ..., multi_instance: _Optional[_Union[MultiInstance, _Mapping]] = ..., job_preparation: _Optional[_Union[JobTaskSpec, _Mapping]] = ..., user_identity: _Optional[_Union[_identity_pb2.UserIdentity, _Mapping]] = ..., packages: _Optional[_Iterable[_Union[PackageDeployment, _Mapping]]] = ..., container: _Optional[_Union[_common_pb2.TaskContainerSettings, _Mapping]] = ...) -> None: ...

class StartTasks(_message.Message):
    __slots__ = ("command_id", "tasks")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskAssignment]
    def __init__(self, command_id: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskAssignment, _Mapping]]] = ...) -> None: ...

class KillTasks(_message.Message):
    __slots__ = ("command_id", "attempts", "delete_files")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DELETE_FILES_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    delete_files: bool
    def __init__(self, command_id: _Optional[int] = ..., attempts: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., delete_files: _Optional[bool] = ...) -> None: ...

class DeleteTaskFiles(_message.Message):
    __slots__ = ("command_id", "job_id", "task_ids")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    job_id: str
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, command_id: _Optional[int] = ..., job_id: _Optional[str] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class EventsAck(_message.Message):
    __slots__ = ("up_to_event_id",)
    UP_TO_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    up_to_event_id: int
    def __init__(self, up_to_event_id: _Optional[int] = ...) -> None: ...

class RunApplication(_message.Message):
    __slots__ = ("command_id", "attempt")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    attempt: AttemptRef
    def __init__(self, command_id: _Optional[int] = ..., attempt: _Optional[_Union[AttemptRef, _Mapping]] = ...) -> None: ...

class RunJobRelease(_message.Message):
    __slots__ = ("command_id", "release")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    release: JobTaskSpec
    def __init__(self, command_id: _Optional[int] = ..., release: _Optional[_Union[JobTaskSpec, _Mapping]] = ...) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("welcome", "start_tasks", "kill_tasks", "delete_task_files", "events_ack", "shutdown", "run_application", "run_job_release", "restart", "node_users", "deploy_packages", "events_acked_up_to")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    START_TASKS_FIELD_NUMBER: _ClassVar[int]
    KILL_TASKS_FIELD_NUMBER: _ClassVar[int]
    DELETE_TASK_FILES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_ACK_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    RUN_APPLICATION_FIELD_NUMBER: _ClassVar[int]
    RUN_JOB_RELEASE_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    NODE_USERS_FIELD_NUMBER: _ClassVar[int]
    DEPLOY_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_ACKED_UP_TO_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    start_tasks: StartTasks
    kill_tasks: KillTasks
    delete_task_files: DeleteTaskFiles
    events_ack: EventsAck
    shutdown: Shutdown
    run_application: RunApplication
    run_job_release: RunJobRelease
    restart: Restart
    node_users: NodeUsers
    deploy_packages: DeployPackages
    events_acked_up_to: int
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., start_tasks: _Optional[_Union[StartTasks, _Mapping]] = ..., kill_tasks: _Optional[_Union[KillTasks, _Mapping]] = ..., delete_task_files: _Optional[_Union[DeleteTaskFiles, _Mapping]] = ..., events_ack: _Optional[_Union[EventsAck, _Mapping]] = ..., shutdown: _Optional[_Union[Shutdown, _Mapping]] = ..., run_application: _Optional[_Union[RunApplication, _Mapping]] = ..., run_job_release: _Optional[_Union[RunJobRelease, _Mapping]] = ..., restart: _Optional[_Union[Restart, _Mapping]] = ..., node_users: _Optional[_Union[NodeUsers, _Mapping]] = ..., deploy_packages: _Optional[_Union[DeployPackages, _Mapping]] = ..., events_acked_up_to: _Optional[int] = ...) -> None: ...

class AgentFrame(_message.Message):
    __slots__ = ("channel", "message", "end")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    channel: int
    message: AgentMessage
    end: bool
    def __init__(self, channel: _Optional[int] = ..., message: _Optional[_Union[AgentMessage, _Mapping]] = ..., end: _Optional[bool] = ...) -> None: ...

class AgentFrames(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[AgentFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[AgentFrame, _Mapping]]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("channel", "message", "end")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    channel: int
    message: ServerMessage
    end: _status_pb2.Status
    def __init__(self, channel: _Optional[int] = ..., message: _Optional[_Union[ServerMessage, _Mapping]] = ..., end: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class ServerFrames(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[ServerFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[ServerFrame, _Mapping]]] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("scope", "job_id", "task_id", "path", "recursive")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    scope: FileScope
    job_id: str
    task_id: str
    path: str
    recursive: bool
    def __init__(self, scope: _Optional[_Union[FileScope, str]] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.NodeFile]
    def __init__(self, files: _Optional[_Iterable[_Union[_common_pb2.NodeFile, _Mapping]]] = ...) -> None: ...

class ReadFileRequest(_message.Message):
    __slots__ = ("scope", "job_id", "task_id", "path", "offset", "follow")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    scope: FileScope
    job_id: str
    task_id: str
    path: str
    offset: int
    follow: bool
    def __init__(self, scope: _Optional[_Union[FileScope, str]] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class StatFileRequest(_message.Message):
    __slots__ = ("scope", "job_id", "task_id", "path")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    scope: FileScope
    job_id: str
    task_id: str
    path: str
    def __init__(self, scope: _Optional[_Union[FileScope, str]] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DeleteFileRequest(_message.Message):
    __slots__ = ("scope", "job_id", "task_id", "path", "recursive")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    scope: FileScope
    job_id: str
    task_id: str
    path: str
    recursive: bool
    def __init__(self, scope: _Optional[_Union[FileScope, str]] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class DeleteFileResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UploadLogsRequest(_message.Message):
    __slots__ = ("container", "virtual_directory", "start_time", "end_time")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    container: str
    virtual_directory: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, container: _Optional[str] = ..., virtual_directory: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadLogsResponse(_message.Message):
    __slots__ = ("number_of_files_uploaded",)
    NUMBER_OF_FILES_UPLOADED_FIELD_NUMBER: _ClassVar[int]
    number_of_files_uploaded: int
    def __init__(self, number_of_files_uploaded: _Optional[int] = ...) -> None: ...
