"""The one error type that bad input raises: a message that names the field and what is allowed."""


class ConfigError(ValueError):
    """A user-facing configuration problem. ``str(err)`` is one line per problem, no traceback."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
