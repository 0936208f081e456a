"""kedro-batch: the Pulumi program.

Reads the stack's typed config, plans the deployment (loads the Kedro project
and checks everything), then builds one ``KedroBatchDeployment``. A mistake
in the project or the config stops here with one message, before any
resource is registered.
"""

import pulumi

from infra.components import KedroBatchDeployment
from infra.config import from_pulumi
from infra.errors import UserError
from infra.names import deployment_name
from infra.plan import plan
from infra.plan_report import summary

# Resource names start with this; lower-case and short enough for S3 bucket names.
NAME = deployment_name(pulumi.get_stack())

try:
    planned = plan(from_pulumi())
    deployment = KedroBatchDeployment(NAME, planned)
except UserError as exc:
    raise pulumi.RunError(str(exc)) from None

left_out = planned.project.left_out.warning()
if left_out:
    pulumi.log.warn(left_out)

# What the grouping chose and what the model expects, in `pulumi preview`'s output.
for pipeline_name, pipeline in planned.pipelines.items():
    for line in summary(pipeline):
        pulumi.log.info(f"{pipeline_name}: {line.strip()}")

pulumi.export("bucketName", deployment.bucket_name)
pulumi.export("imageRef", deployment.image_ref)
pulumi.export("jobQueueArns", deployment.job_queue_arns)
pulumi.export("stateMachineArns", deployment.state_machine_arns)
pulumi.export("consoleUrls", deployment.console_urls)
pulumi.export("startExecutionCommands", deployment.start_execution_commands)
if deployment.schedule_names:
    pulumi.export("scheduleNames", deployment.schedule_names)
if deployment.failure_topic_arn is not None:
    pulumi.export("failureTopicArn", deployment.failure_topic_arn)
