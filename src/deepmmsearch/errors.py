"""The errors of deepmmsearch. Each class has one reader: the user, the model, or the developer."""


class DmmsError(Exception):
    """Base of every error we raise on purpose. The CLI prints its message as one line and exits non-zero."""


class InputError(DmmsError):
    """Bad input from the user: a missing file, a malformed record, an unreadable image, a bad flag."""


class ConfigError(DmmsError):
    """A configuration that cannot work: an unknown backend, a bad field, a wrong combination."""


class PolicyError(DmmsError):
    """The model backend failed: unreachable server, rejected key, exhausted script, timeout."""


class ContextLimitError(PolicyError):
    """The conversation no longer fits the model's context window."""


class ToolError(DmmsError):
    """A tool failed. The agent loop turns it into an observation that the model reads."""
