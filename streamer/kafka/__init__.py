"""The only place that talks to aiokafka."""
