"""Everything that talks to Kafka: the only package that imports aiokafka.

* ``admin``: startup checks; the topics exist (created if allowed) and are co-partitioned.
* ``consumer``: the input side, a consumer in a group behind the Source port.
* ``producer``: the output side (Bundles, dead letters, changelog records) behind the Sink port.
* ``changelog``: the restore reader: a partition's changelog, read back outside the group.
* ``publisher``: a plain keyed-record producer for the ``publish`` and ``demo`` commands.
* ``reader``: reads a topic outside any group: latest value per key (the demo collects Bundles with
  it), or every record as it arrives (``tail``).
* ``sink_io``: the FHIR sink's side: the Bundles topic in the sink's own group, its DLQ producer
  and topic.
* ``security``: TLS and SASL keyword arguments for every client above; a broker that refuses us
  (untrusted certificate, wrong password) stops the start with a message naming the cause.
"""
