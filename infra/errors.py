"""The one exception type for mistakes a user can fix.

The CLI turns it into one line on stderr and exit status 2; the Pulumi
program turns it into a ``pulumi.RunError`` (no traceback). Anything else
escaping is a bug in kedro-batch and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's project, config or input, with the fix."""
