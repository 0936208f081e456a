"""The data bucket Kedro's catalog reads and writes.

pulumi-aws v7 style: the bucket plus one resource per concern (versioning,
encryption, public-access block, ownership, TLS-only policy, lifecycle).

S3 refuses concurrent changes to one bucket's configuration (``409
OperationAborted: A conflicting conditional operation is currently in
progress``), so the per-concern resources are created one after another, in
a fixed chain, rather than all at once as their shared ``bucket`` input
alone would let Pulumi do.

Data outlives the stack by default: ``pulumi destroy`` leaves the bucket *and
its settings* in place (``retain_on_delete`` on every resource here; deleting
only the settings would leave a retained bucket without its public-access
block or TLS-only policy). A stack that opts into ``forceDestroy`` (dev) gets
an emptied and deleted bucket instead.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra import iam, names

RUNS_PREFIX = "runs/"

_SseByDefault = (
    aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
)


class DataBucket(pulumi.ComponentResource):
    """Versioned, encrypted, private, TLS-only S3 bucket; run data expires."""

    bucket: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        force_destroy: bool,
        kms_key_arn: str | None,
        run_data_expiration_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kedro-batch:index:DataBucket", name, None, opts)
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=not force_destroy)
        bucket = aws.s3.Bucket(
            names.fitted(f"{name}-data", names.BUCKET), force_destroy=force_destroy, opts=keep
        )

        def after(previous: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(depends_on=[previous]))

        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=keep,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=after(ownership),
        )
        # After the public-access block: S3 rejects policy writes while it is being set.
        policy = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(iam.deny_insecure_transport(arn))),
            opts=after(public_access),
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=after(policy),
        )
        by_default = _SseByDefault(
            sse_algorithm="aws:kms" if kms_key_arn else "AES256", kms_master_key_id=kms_key_arn
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=by_default,
                    # One KMS data key per bucket rather than per object: far
                    # fewer (billed) KMS calls.
                    bucket_key_enabled=True if kms_key_arn else None,
                )
            ],
            opts=after(versioning),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-run-data",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=RUNS_PREFIX),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=run_data_expiration_days
                    ),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=run_data_expiration_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=min(run_data_expiration_days, 7)
                    ),
                )
            ],
            opts=after(encryption),
        )
        self.bucket = bucket.bucket
        self.arn = bucket.arn
        self.register_outputs({"bucket": self.bucket, "arn": self.arn})
