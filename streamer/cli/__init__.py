"""The commands of ``python -m streamer``: one module per command, each with ``main(argv) -> int``.

``run`` is the stream processor; ``publish``, ``convert`` and ``demo`` are tools around it.
``streamer.__main__`` only picks the module; nothing in the processor imports this package.
"""
