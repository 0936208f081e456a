"""Project settings.

Only the configuration loader is customised: ``base`` holds everything the
pipelines need and ``local`` (git-ignored contents, kept empty in the repo)
is where credentials and personal overrides go, as in any Kedro project.
``dev`` and ``prod`` hold per-deployment overrides (kedro-batch's
``kedroEnv``); parameters merge softly so an override of one nested key
keeps its siblings.
See https://docs.kedro.org/en/stable/configure/configuration_basics/
"""

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
