"""The local study store of each assigned input partition: keys, engines, staged changes; no Kafka.

`StateDirectory` locks `<root>/<group>` and opens one `KVStore` per partition (RocksDB by default,
SQLite as the fallback); `PartitionStore` stages changes over it between checkpoints.
"""

from streamer.state.directory import Engine, StateDirectory
from streamer.state.errors import (
    InvalidKeyError,
    StateDirectoryLockedError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
)
from streamer.state.keys import (
    CLOSED_PREFIX,
    INSTANCE_PREFIX,
    META_PREFIX,
    STUDY_PREFIX,
    closed_key,
    instance_key,
    instance_prefix,
    is_local_key,
    parse_closed_key,
    parse_instance_key,
    parse_study_key,
    study_key,
)
from streamer.state.kv import KVStore, MemoryStore, prefix_upper_bound
from streamer.state.partition_store import (
    BytesCodec,
    CacheInfo,
    PartitionStore,
    StoreMetadata,
    StudyCodec,
)
from streamer.state.rocks import (
    RocksConfig,
    RocksResources,
    RocksStore,
    shared_resources,
    shared_usage,
)
from streamer.state.sqlite import SqliteConfig, SqliteStore

__all__ = [
    "CLOSED_PREFIX",
    "INSTANCE_PREFIX",
    "META_PREFIX",
    "STUDY_PREFIX",
    "BytesCodec",
    "CacheInfo",
    "Engine",
    "InvalidKeyError",
    "KVStore",
    "MemoryStore",
    "PartitionStore",
    "RocksConfig",
    "RocksResources",
    "RocksStore",
    "SqliteConfig",
    "SqliteStore",
    "StateDirectory",
    "StateDirectoryLockedError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "StoreMetadata",
    "StudyCodec",
    "closed_key",
    "instance_key",
    "instance_prefix",
    "is_local_key",
    "parse_closed_key",
    "parse_instance_key",
    "parse_study_key",
    "prefix_upper_bound",
    "shared_resources",
    "shared_usage",
    "study_key",
]
