"""Everything that talks to Kafka: the only package that imports aiokafka.

* ``admin``: startup checks; the topics exist (created if allowed) and are co-partitioned.
* ``consumer``: the input side, a consumer in a group behind the Source port.
* ``producer``: the output side (Bundles, dead letters, changelog records) behind the Sink port.
* ``changelog``: the restore reader: a partition's changelog, read back outside the group.
* ``publisher``: a plain keyed-record producer for the ``publish`` and ``demo`` commands.
* ``reader``: reads a topic from the start, latest value per key (the demo collects Bundles with it).
"""
