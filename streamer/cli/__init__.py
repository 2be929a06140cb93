"""The commands of ``python -m streamer``: one module per command, each with ``main(argv) -> int``.

``run`` is the stream processor; ``publish``, ``convert`` and ``demo`` are tools around it.
``parsers`` holds the tools' command lines, so ``COMMAND --help`` imports none of their code.
``streamer.__main__`` only picks the module; nothing in the processor imports this package.
"""
