#!/usr/bin/env python3
"""Bootstrap IAM-enforced S3 on a running moto_server (tested with moto 5.2.5).

Usage:  setup_readonly.py PORT [--no-reset] [--no-verify]

Expects the server to have been started as
    INITIAL_NO_AUTH_ACTION_COUNT=6 moto_server -H 127.0.0.1 -p PORT

What it does
  1. (unless --no-reset) POST /moto-api/reset-auth "6": re-arms the
     unauthenticated budget to exactly 6 and zeroes moto's request counter,
     so stray requests made earlier (readiness probes hitting "/", etc.) do not
     matter. /moto-api/* requests are never counted or auth-checked.
  2. Makes exactly 6 unauthenticated IAM calls (botocore retries disabled so a
     retry can never silently eat budget):
        CreateUser admin, CreateUser reader,
        PutUserPolicy admin, PutUserPolicy reader,
        CreateAccessKey admin, CreateAccessKey reader
  3. (unless --no-reset) POST /moto-api/reset-auth "0": belt and braces,
     enforcement is on from here whatever the counter says.
  4. Checks enforcement really is on (a bogus key must get InvalidAccessKeyId).
  5. With the admin key: CreateBucket mirror-bucket, PutObject seed.txt.
  6. (unless --no-verify) checks reader can List/Get/Head and is refused
     Put/Delete/CreateMultipartUpload/Copy/bulk-delete; admin can put.
     Progress goes to stderr.

stdout: one JSON object with the four keys (plus endpoint/bucket/region).
Exit status non-zero on any failure.
"""
import json
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BUCKET = "mirror-bucket"
REGION = "us-east-1"
NO_AUTH_BUDGET = 6  # must equal the number of IAM calls in bootstrap_iam()

ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}

# moto resource ARNs: bucket-level actions (ListBucket, HeadBucket, bulk
# DeleteObjects, CreateBucket, ...) are checked against arn:aws:s3:::BUCKET,
# object actions against arn:aws:s3:::BUCKET/KEY.
READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            # s3:HeadBucket is a moto-only action name (real AWS maps
            # HeadBucket to s3:ListBucket); GetBucketLocation for SDKs that ask.
            "Action": ["s3:ListBucket", "s3:HeadBucket", "s3:GetBucketLocation"],
            "Resource": f"arn:aws:s3:::{BUCKET}",
        },
        {
            "Effect": "Allow",
            # HeadObject is checked as s3:GetObject by moto.
            "Action": ["s3:GetObject"],
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        },
    ],
}

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
S3_CFG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    retries={"total_max_attempts": 1, "mode": "standard"},
)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def reset_auth(endpoint, value):
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=str(value).encode(),
        method="POST",
        # Must NOT be application/x-www-form-urlencoded (urllib's default for a
        # POST body): Flask would swallow the body as form data and moto's
        # float(request.data) fails with a 500.
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        body = json.loads(r.read())
    log(f"reset-auth {value}: previous={body.get('PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT')}")


def s3_client(endpoint, key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=S3_CFG,
    )


def bootstrap_iam(endpoint):
    """Exactly NO_AUTH_BUDGET (=6) requests, all of them counted by moto."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        config=NO_RETRY,
    )
    iam.create_user(UserName="admin")  # 1
    iam.create_user(UserName="reader")  # 2
    iam.put_user_policy(  # 3
        UserName="admin", PolicyName="s3-admin", PolicyDocument=json.dumps(ADMIN_POLICY)
    )
    iam.put_user_policy(  # 4
        UserName="reader", PolicyName="s3-read", PolicyDocument=json.dumps(READER_POLICY)
    )
    a = iam.create_access_key(UserName="admin")["AccessKey"]  # 5
    r = iam.create_access_key(UserName="reader")["AccessKey"]  # 6
    return a, r


def err_code(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def expect_denied(what, fn, *args, **kw):
    code, status = err_code(fn, *args, **kw)
    if not (status == 403 and code == "AccessDenied"):
        raise SystemExit(f"FAIL {what}: expected 403 AccessDenied, got {status} {code}")
    log(f"ok   {what}: 403 AccessDenied")


def expect_ok(what, fn, *args, **kw):
    try:
        out = fn(*args, **kw)
    except ClientError as e:
        raise SystemExit(f"FAIL {what}: {e}")
    log(f"ok   {what}")
    return out


def verify(endpoint, admin, reader):
    rd = s3_client(endpoint, reader["AccessKeyId"], reader["SecretAccessKey"])
    ad = s3_client(endpoint, admin["AccessKeyId"], admin["SecretAccessKey"])

    keys = [o["Key"] for o in expect_ok("reader ListObjectsV2", rd.list_objects_v2, Bucket=BUCKET)["Contents"]]
    assert "seed.txt" in keys, keys
    expect_ok("reader ListObjectsV2 prefix/delimiter",
              rd.list_objects_v2, Bucket=BUCKET, Prefix="dir/", Delimiter="/")
    expect_ok("reader ListObjects (v1)", rd.list_objects, Bucket=BUCKET)
    body = expect_ok("reader GetObject", rd.get_object, Bucket=BUCKET, Key="seed.txt")["Body"].read()
    assert body == b"hello", body
    expect_ok("reader GetObject range", rd.get_object, Bucket=BUCKET, Key="seed.txt", Range="bytes=1-2")
    expect_ok("reader HeadObject", rd.head_object, Bucket=BUCKET, Key="seed.txt")
    expect_ok("reader HeadBucket", rd.head_bucket, Bucket=BUCKET)
    expect_ok("reader GetObject odd key", rd.get_object, Bucket=BUCKET, Key="dir/a b+c%d=é.txt")

    expect_denied("reader PutObject", rd.put_object, Bucket=BUCKET, Key="evil.txt", Body=b"x")
    expect_denied("reader PutObject overwrite", rd.put_object, Bucket=BUCKET, Key="seed.txt", Body=b"x")
    expect_denied("reader DeleteObject", rd.delete_object, Bucket=BUCKET, Key="seed.txt")
    expect_denied("reader CreateMultipartUpload", rd.create_multipart_upload, Bucket=BUCKET, Key="mp.bin")
    expect_denied("reader CopyObject",
                  rd.copy_object, Bucket=BUCKET, Key="copy.txt", CopySource={"Bucket": BUCKET, "Key": "seed.txt"})
    expect_denied("reader CreateBucket", rd.create_bucket, Bucket="other-bucket")
    # Bulk DeleteObjects: like AWS, moto answers 200 with per-key AccessDenied errors.
    res = rd.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "seed.txt"}]})
    errs = res.get("Errors", [])
    if res.get("Deleted") or not errs or errs[0]["Code"] != "AccessDenied":
        raise SystemExit(f"FAIL reader DeleteObjects: {res}")
    log("ok   reader DeleteObjects: 200 with per-key AccessDenied")
    # Multipart by reader on an upload created by admin: UploadPart/Complete are s3:PutObject.
    up = ad.create_multipart_upload(Bucket=BUCKET, Key="mp-admin.bin")["UploadId"]
    expect_denied("reader UploadPart", rd.upload_part,
                  Bucket=BUCKET, Key="mp-admin.bin", UploadId=up, PartNumber=1, Body=b"x")
    expect_denied("reader AbortMultipartUpload", rd.abort_multipart_upload,
                  Bucket=BUCKET, Key="mp-admin.bin", UploadId=up)
    ad.abort_multipart_upload(Bucket=BUCKET, Key="mp-admin.bin", UploadId=up)
    # Object still intact after all of that
    assert rd.get_object(Bucket=BUCKET, Key="seed.txt")["Body"].read() == b"hello"
    log("ok   seed.txt intact")

    expect_ok("admin PutObject", ad.put_object, Bucket=BUCKET, Key="dir/admin.txt", Body=b"admin")
    up = ad.create_multipart_upload(Bucket=BUCKET, Key="mp.bin")["UploadId"]
    etag = ad.upload_part(Bucket=BUCKET, Key="mp.bin", UploadId=up, PartNumber=1, Body=b"p" * 10)["ETag"]
    expect_ok("admin multipart upload", ad.complete_multipart_upload, Bucket=BUCKET, Key="mp.bin", UploadId=up,
              MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    expect_ok("admin DeleteObject", ad.delete_object, Bucket=BUCKET, Key="mp.bin")

    # Bad credentials are rejected
    bad = s3_client(endpoint, reader["AccessKeyId"], "wrong-secret")
    code, status = err_code(bad.list_objects_v2, Bucket=BUCKET)
    if (status, code) != (403, "SignatureDoesNotMatch"):
        raise SystemExit(f"FAIL wrong secret: got {status} {code}")
    log("ok   wrong secret: 403 SignatureDoesNotMatch")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if len(args) != 1:
        raise SystemExit(__doc__)
    port = int(args[0])
    endpoint = f"http://127.0.0.1:{port}"

    if "--no-reset" not in flags:
        reset_auth(endpoint, NO_AUTH_BUDGET)
    admin, reader = bootstrap_iam(endpoint)
    log(f"IAM bootstrap done: admin={admin['AccessKeyId']} reader={reader['AccessKeyId']}")
    if "--no-reset" not in flags:
        reset_auth(endpoint, 0)

    # Enforcement must now be active: an unknown key is refused.
    code, status = err_code(s3_client(endpoint, "AKIANOTAREALKEY00000", "x").list_buckets)
    if (status, code) != (403, "InvalidAccessKeyId"):
        raise SystemExit(
            f"FAIL: auth is NOT enforced (unknown key got {status} {code}); was the server "
            f"started with INITIAL_NO_AUTH_ACTION_COUNT={NO_AUTH_BUDGET}?"
        )
    log("ok   enforcement active (unknown key -> 403 InvalidAccessKeyId)")

    ad = s3_client(endpoint, admin["AccessKeyId"], admin["SecretAccessKey"])
    ad.create_bucket(Bucket=BUCKET)
    ad.put_object(Bucket=BUCKET, Key="seed.txt", Body=b"hello")
    ad.put_object(Bucket=BUCKET, Key="dir/a b+c%d=é.txt", Body=b"odd")
    log(f"admin created {BUCKET} with seed.txt")

    if "--no-verify" not in flags:
        verify(endpoint, admin, reader)

    print(json.dumps({
        "endpoint": endpoint,
        "region": REGION,
        "bucket": BUCKET,
        "admin_access_key_id": admin["AccessKeyId"],
        "admin_secret_access_key": admin["SecretAccessKey"],
        "reader_access_key_id": reader["AccessKeyId"],
        "reader_secret_access_key": reader["SecretAccessKey"],
    }))


if __name__ == "__main__":
    main()
