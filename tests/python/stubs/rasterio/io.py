"""Stand-in: see ../README.md."""


class MemoryFile:
    pass
