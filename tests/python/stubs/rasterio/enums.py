"""Stand-in: see ../README.md."""


class Resampling:
    pass
