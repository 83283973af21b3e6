"""AWS plumbing shared by the S3 landing zone and the S3 IO manager (dagster-aws S3Resource)."""

import os

import botocore.exceptions
import dagster as dg
from dagster_aws.s3 import S3Resource


class S3StorageError(dg.Failure):
    """One clear line about what went wrong talking to S3 (no credentials in it)."""


def s3_error(action: str, where: str, e: Exception) -> S3StorageError:
    if isinstance(e, botocore.exceptions.ClientError):
        err = e.response.get("Error", {})
        code = err.get("Code", "")
        if code in ("NoSuchBucket",):
            text = "the bucket does not exist"
        elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                      "ExpiredToken", "InvalidToken"):
            text = f"access denied ({code}): check the AWS credentials"
        else:
            text = f"{code}: {err.get('Message', '')}".strip(": ")
    elif isinstance(e, botocore.exceptions.EndpointConnectionError):
        text = f"cannot reach the S3 endpoint ({e.kwargs.get('endpoint_url', '')})"
    elif isinstance(e, botocore.exceptions.NoCredentialsError):
        text = "no AWS credentials found (environment, profile or instance role)"
    else:
        text = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return S3StorageError(description=f"S3 {action} {where}: {text}")


_CLIENTS: dict[str, object] = {}
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_REGION",
               "AWS_DEFAULT_REGION", "AWS_PROFILE")


def s3_client(resource: S3Resource):
    """One boto3 client per distinct S3Resource configuration and process: creating a
    client is slow."""
    env = [os.environ.get(v) for v in _CLIENT_ENV]  # what boto3 reads when config is unset
    key = repr((sorted(resource.model_dump().items()), env))
    if key not in _CLIENTS:
        _CLIENTS[key] = resource.get_client()
    return _CLIENTS[key]
