"""The test harness's own S3 calls to a moto server, with boto3 (which moto brings):

    s3_admin.py ENDPOINT setup
    s3_admin.py ENDPOINT create-user NAME
    s3_admin.py ENDPOINT create-bucket BUCKET
    s3_admin.py ENDPOINT put BUCKET KEY            (the object's bytes on stdin)
    s3_admin.py ENDPOINT upload BUCKET PREFIX DIR  (every file under DIR, as PREFIX/relative)
    s3_admin.py ENDPOINT list BUCKET [PREFIX]      (one key a line, sorted)
    s3_admin.py ENDPOINT get BUCKET KEY            (the object's bytes on stdout)

`setup` and `create-user` create an IAM user allowed `s3:*` (`setup`: `*`, for the harness)
and print `ACCESS_KEY_ID SECRET_ACCESS_KEY`: keys moto accepts once it enforces credentials.
The other commands sign with the key in HARNESS_S3_KEY and HARNESS_S3_SECRET (from `setup`).
"""

import json
import os
import sys

import boto3
import botocore.config


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id=os.environ.get("HARNESS_S3_KEY") or "harness",
        aws_secret_access_key=os.environ.get("HARNESS_S3_SECRET") or "harness",
        region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def create_user(endpoint, name, action):
    iam = client("iam", endpoint)
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="lake", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    print(key["AccessKeyId"], key["SecretAccessKey"])


def main():
    endpoint, command, *args = sys.argv[1:]
    if command == "setup":
        create_user(endpoint, "hookhouse-test-harness", "*")
    elif command == "create-user":
        create_user(endpoint, args[0], "s3:*")
    elif command == "create-bucket":
        client("s3", endpoint).create_bucket(Bucket=args[0])
    elif command == "put":
        client("s3", endpoint).put_object(Bucket=args[0], Key=args[1], Body=sys.stdin.buffer.read())
    elif command == "upload":
        bucket, prefix, directory = args
        s3 = client("s3", endpoint)
        for root, _, files in os.walk(directory):
            for name in files:
                path = os.path.join(root, name)
                relative = os.path.relpath(path, directory).replace(os.sep, "/")
                s3.upload_file(path, bucket, f"{prefix.rstrip('/')}/{relative}".lstrip("/"))
    elif command == "list":
        paginator = client("s3", endpoint).get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=args[0], Prefix=args[1] if len(args) > 1 else ""):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        for key in sorted(keys):
            print(key)
    elif command == "get":
        body = client("s3", endpoint).get_object(Bucket=args[0], Key=args[1])["Body"].read()
        sys.stdout.buffer.write(body)
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
