"""Run Kedro nodes as the Batch jobs of a kedro-batch deployment.

Installed in the deployment's image (and in the development environment),
it provides the ``kedro-batch-task`` command and a Kedro hook, registered
through the ``kedro.hooks`` entry point, that moves a task's data into the
data bucket. The pure rules it follows live in :mod:`.boundaries` and
:mod:`.layout`, and ``infra.datasets`` applies the same ones at deploy time.
"""
