"""Sets up read-only S3 credentials on a moto server that enforces IAM.

The server must run with INITIAL_NO_AUTH_ACTION_COUNT set: moto then lets
that many requests through unsigned and checks every later one against the
IAM policies of the key that signed it. This script re-arms that allowance
to exactly the six IAM calls it makes (two users, a policy each, a key
each), closes it, and creates the bucket with the writer's key. It prints
shell assignments of the two key pairs for scripts/test to export.

Facts about moto 5 this relies on: /moto-api/* requests are never counted;
the reset-auth body must be sent as text/plain; bucket-level actions are
checked against arn:aws:s3:::BUCKET and object actions against
arn:aws:s3:::BUCKET/KEY; HeadBucket is checked as s3:HeadBucket.
"""

import json
import sys
import urllib.request

import boto3
from botocore.config import Config

port, bucket = sys.argv[1], sys.argv[2]
endpoint = f"http://127.0.0.1:{port}"
UNSIGNED_CALLS = 6


def allow_unsigned(count):
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=str(count).encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).read()


def policy(actions_on_bucket, actions_on_objects):
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": actions_on_bucket,
             "Resource": f"arn:aws:s3:::{bucket}"},
            {"Effect": "Allow", "Action": actions_on_objects,
             "Resource": f"arn:aws:s3:::{bucket}/*"},
        ],
    })


no_retries = Config(retries={"max_attempts": 1, "mode": "standard"})
allow_unsigned(UNSIGNED_CALLS)
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
                   config=no_retries)
iam.create_user(UserName="writer")
iam.create_user(UserName="reader")
iam.put_user_policy(UserName="writer", PolicyName="write",
                    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
iam.put_user_policy(UserName="reader", PolicyName="read",
                    PolicyDocument=policy(["s3:ListBucket", "s3:HeadBucket",
                                           "s3:GetBucketLocation"], ["s3:GetObject"]))
writer = iam.create_access_key(UserName="writer")["AccessKey"]
reader = iam.create_access_key(UserName="reader")["AccessKey"]
allow_unsigned(0)

s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=writer["AccessKeyId"],
                  aws_secret_access_key=writer["SecretAccessKey"],
                  config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket=bucket)

print(f"NUTHATCH_TEST_IAM_S3_ENDPOINT={endpoint}")
print(f"NUTHATCH_TEST_IAM_S3_BUCKET={bucket}")
print(f"NUTHATCH_TEST_IAM_WRITER_KEY={writer['AccessKeyId']}")
print(f"NUTHATCH_TEST_IAM_WRITER_SECRET={writer['SecretAccessKey']}")
print(f"NUTHATCH_TEST_IAM_READER_KEY={reader['AccessKeyId']}")
print(f"NUTHATCH_TEST_IAM_READER_SECRET={reader['SecretAccessKey']}")
