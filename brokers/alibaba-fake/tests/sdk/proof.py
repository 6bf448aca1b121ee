#!/usr/bin/env python3
"""Proof that the official Alibaba Cloud Python SDKs are accepted by Skybroker's fake.

Each SDK makes real calls against the fake, with its default signing, and checks the
answers: alibabacloud-rds20140815 and alibabacloud-ram20150501 on the fake's RPC endpoint
(ACS3-HMAC-SHA256), alibabacloud-oss-v2 on its OSS endpoint (OSS4-HMAC-SHA256,
path-style). Then each SDK repeats one call with one byte of its signature changed, and
the fake must refuse it with SignatureDoesNotMatch.

alibabacloud-sts20150401 proves temporary credentials: a RAM user made for the proof
(whose only permission is sts:AssumeRole) assumes a role that may read RDS; the RDS SDK,
given the returned key and security token, reads RDS with them (the token travels in the
signed x-acs-security-token header) and is refused what the role may not do; the same key
with another token, and with its session ended (the fake's /__fake/expire-sessions), is
refused with the codes STS's tokens are refused with. Those refusals are recorded as
expected refusals, with the code each must have.

The tampering happens after the SDK has signed, on the Authorization header it built:
- RPC SDKs: the signing function they all call, alibabacloud_tea_openapi's
  Utils.get_authorization, is wrapped for the one call;
- OSS SDK: a second client is made with a signer that runs the SDK's own SignerV4 and
  then edits the header (the SDK takes a custom signer as a client option).
The accepted calls use the SDKs' default signers, only observed to report the algorithm.

Prints one JSON object with every call's outcome and exits 1 on any failure.

    proof.py --rpc-url http://127.0.0.1:P --oss-url http://127.0.0.1:Q --region cn-hangzhou \\
             --access-key-id ID --access-key-secret SECRET

Each option may instead come from the environment: SKYBROKER_FAKE_RPC_URL,
SKYBROKER_FAKE_OSS_URL, SKYBROKER_FAKE_REGION, SKYBROKER_FAKE_ACCESS_KEY_ID,
SKYBROKER_FAKE_ACCESS_KEY_SECRET.
"""

import argparse
import contextlib
import importlib.metadata
import json
import os
import sys
import traceback
import urllib.request
import uuid
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2.signer import SignerV4
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_ram20150501.client import Client as RamClient
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client as RdsClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_openapi.utils import Utils as OpenApiUtils

PACKAGES = [
    "alibabacloud-rds20140815",
    "alibabacloud-ram20150501",
    "alibabacloud-sts20150401",
    "alibabacloud-oss-v2",
    "alibabacloud-tea-openapi",
    "darabonba-core",
]


class Proof:
    """Runs the calls and records each outcome."""

    def __init__(self):
        self.calls = []
        self.algorithms = {}

    def accepted(self, sdk, operation, call):
        """Runs `call`, which must succeed and return a dict of details (it asserts its checks)."""
        record = {"sdk": sdk, "operation": operation, "tampered": False}
        try:
            record["detail"] = call() or {}
            record["accepted"] = True
            record["ok"] = True
        except Exception as err:  # noqa: BLE001 - every failure is recorded, not raised
            record.update(accepted=False, ok=False, error=describe(err))
        self.calls.append(record)
        return record.get("detail", {})

    def refused(self, sdk, operation, call, code):
        """Runs `call`, correctly signed, which the fake must refuse with `code`."""
        record = {"sdk": sdk, "operation": operation, "tampered": False, "refused": True, "expected_code": code}
        try:
            call()
            record.update(accepted=True, ok=False, error="the call was accepted")
        except Exception as err:  # noqa: BLE001
            record.update(accepted=False, **error_fields(err))
            record["ok"] = record.get("code") == code
        self.calls.append(record)

    def rejected(self, sdk, operation, call):
        """Runs `call` with a tampered signature: it must fail with SignatureDoesNotMatch."""
        record = {"sdk": sdk, "operation": operation, "tampered": True}
        try:
            call()
            record.update(accepted=True, ok=False, error="the tampered call was accepted")
        except Exception as err:  # noqa: BLE001
            record.update(accepted=False, **error_fields(err))
            record["ok"] = record.get("code") == "SignatureDoesNotMatch"
        self.calls.append(record)


def error_fields(err):
    """Status and code of an SDK error (RPC SDKs raise them directly, the OSS SDK wraps them)."""
    inner = err.unwrap() if isinstance(err, oss.exceptions.OperationError) else err
    fields = {
        "status": getattr(inner, "status_code", None),
        "code": getattr(inner, "code", None),
        "message": str(getattr(inner, "message", "") or inner)[:300],
    }
    if getattr(inner, "ec", None):
        fields["ec"] = inner.ec
    return fields


def describe(err):
    """A short description of an unexpected failure."""
    fields = error_fields(err)
    if fields["code"] is None:
        return "".join(traceback.format_exception_only(type(err), err)).strip()[:500]
    return fields


def flip(signature):
    """The signature with one byte changed: its first hex digit replaced by another."""
    return ("0" if signature[0] != "0" else "1") + signature[1:]


def tamper(authorization):
    """An Authorization header with one byte of its `Signature=` value changed."""
    head, marker, signature = authorization.rpartition("Signature=")
    if not marker or not signature:
        raise AssertionError(f"no signature in {authorization!r}")
    return head + marker + flip(signature)


@contextlib.contextmanager
def rpc_signatures(algorithms, sdk, tampered=False):
    """Observes (and, when `tampered`, edits) the Authorization headers the RPC SDKs build."""
    original = OpenApiUtils.get_authorization

    def signing(*args, **kwargs):
        authorization = original(*args, **kwargs)
        algorithms.setdefault(sdk, authorization.split(" ", 1)[0])
        return tamper(authorization) if tampered else authorization

    OpenApiUtils.get_authorization = staticmethod(signing)
    try:
        yield
    finally:
        OpenApiUtils.get_authorization = staticmethod(original)


@contextlib.contextmanager
def oss_signatures(algorithms):
    """Observes the Authorization headers the OSS SDK's default signer (SignerV4) builds."""
    original = SignerV4.sign

    def sign(self, signing_ctx):
        original(self, signing_ctx)
        authorization = signing_ctx.request.headers.get("Authorization", "")
        algorithms.setdefault("oss", authorization.split(" ", 1)[0])

    SignerV4.sign = sign
    try:
        yield
    finally:
        SignerV4.sign = original


class OneByteOffSignerV4(SignerV4):
    """The SDK's own V4 signer, then one byte of the signature changed."""

    def sign(self, signing_ctx):
        super().sign(signing_ctx)
        headers = signing_ctx.request.headers
        headers["Authorization"] = tamper(headers["Authorization"])


def rpc_config(args, key_id=None, secret=None, token=None):
    """tea-openapi configuration pointing at the fake's RPC endpoint over http, signing with
    the root key, or with `key_id`/`secret` (and the STS `token`) when given."""
    endpoint = urlsplit(args.rpc_url)
    return openapi_models.Config(
        access_key_id=key_id or args.access_key_id,
        access_key_secret=secret or args.access_key_secret,
        security_token=token,
        region_id=args.region,
        endpoint=endpoint.netloc,
        protocol=endpoint.scheme or "http",
    )


def prove_rds(proof, args):
    """CreateDBInstance (twice with one ClientToken), DescribeDBInstanceAttribute, then a tampered Describe."""
    client = RdsClient(rpc_config(args))
    token = f"proof-{uuid.uuid4()}"
    create = rds_models.CreateDBInstanceRequest(
        region_id=args.region,
        engine="MySQL",
        engine_version="8.0",
        dbinstance_class="mysql.n2.small.1",
        dbinstance_storage=20,
        dbinstance_net_type="Intranet",
        security_iplist="10.0.0.0/8",
        pay_type="Postpaid",
        client_token=token,
        dbinstance_description="skybroker sdk proof",
    )
    created = {}

    def create_instance():
        with rpc_signatures(proof.algorithms, "rds"):
            body = client.create_dbinstance(create).body
        assert body.dbinstance_id, "no DBInstanceId"
        created["id"] = body.dbinstance_id
        return {"DBInstanceId": body.dbinstance_id, "RequestId": body.request_id}

    def create_again():
        with rpc_signatures(proof.algorithms, "rds"):
            body = client.create_dbinstance(create).body
        assert body.dbinstance_id == created.get("id"), f"ClientToken gave {body.dbinstance_id}"
        return {"DBInstanceId": body.dbinstance_id, "same_instance": True}

    describe_request = lambda: rds_models.DescribeDBInstanceAttributeRequest(  # noqa: E731
        dbinstance_id=created.get("id")
    )

    def describe_instance():
        with rpc_signatures(proof.algorithms, "rds"):
            body = client.describe_dbinstance_attribute(describe_request()).body
        attributes = body.items.dbinstance_attribute
        assert len(attributes) == 1, f"{len(attributes)} attribute sets"
        attribute = attributes[0]
        assert attribute.dbinstance_id == created["id"], attribute.dbinstance_id
        assert attribute.engine == "MySQL", attribute.engine
        assert attribute.dbinstance_status in ("Creating", "Running"), attribute.dbinstance_status
        return {"DBInstanceStatus": attribute.dbinstance_status, "DBInstanceClass": attribute.dbinstance_class}

    def describe_tampered():
        with rpc_signatures(proof.algorithms, "rds", tampered=True):
            client.describe_dbinstance_attribute(describe_request())

    proof.accepted("rds", "CreateDBInstance", create_instance)
    proof.accepted("rds", "CreateDBInstance (same ClientToken)", create_again)
    proof.accepted("rds", "DescribeDBInstanceAttribute", describe_instance)
    proof.rejected("rds", "DescribeDBInstanceAttribute", describe_tampered)


def prove_ram(proof, args):
    """CreateUser, CreateAccessKey, DeleteAccessKey, DeleteUser, then a tampered CreateUser."""
    client = RamClient(rpc_config(args))
    user = f"proof-{uuid.uuid4().hex[:12]}"
    key = {}

    def create_user():
        with rpc_signatures(proof.algorithms, "ram"):
            body = client.create_user(ram_models.CreateUserRequest(user_name=user, display_name="sdk proof")).body
        assert body.user.user_name == user, body.user.user_name
        return {"UserName": body.user.user_name, "UserId": body.user.user_id}

    def create_access_key():
        with rpc_signatures(proof.algorithms, "ram"):
            body = client.create_access_key(ram_models.CreateAccessKeyRequest(user_name=user)).body
        assert body.access_key.access_key_id and body.access_key.access_key_secret, "no key"
        assert body.access_key.status == "Active", body.access_key.status
        key["id"] = body.access_key.access_key_id
        return {"AccessKeyId": body.access_key.access_key_id}

    def delete_access_key():
        request = ram_models.DeleteAccessKeyRequest(user_name=user, user_access_key_id=key.get("id"))
        with rpc_signatures(proof.algorithms, "ram"):
            client.delete_access_key(request)
        return {}

    def delete_user():
        with rpc_signatures(proof.algorithms, "ram"):
            client.delete_user(ram_models.DeleteUserRequest(user_name=user))
        return {}

    tampered_user = f"{user}-tampered"

    def create_user_tampered():
        with rpc_signatures(proof.algorithms, "ram", tampered=True):
            client.create_user(ram_models.CreateUserRequest(user_name=tampered_user))

    def tampered_had_no_effect():
        try:
            with rpc_signatures(proof.algorithms, "ram"):
                client.get_user(ram_models.GetUserRequest(user_name=tampered_user))
        except Exception as err:  # noqa: BLE001
            code = error_fields(err)["code"]
            assert code == "EntityNotExist.User", f"GetUser answered {code}"
            return {"code": code}
        raise AssertionError("the user of the refused CreateUser exists")

    proof.accepted("ram", "CreateUser", create_user)
    proof.accepted("ram", "CreateAccessKey", create_access_key)
    proof.accepted("ram", "DeleteAccessKey", delete_access_key)
    proof.accepted("ram", "DeleteUser", delete_user)
    proof.rejected("ram", "CreateUser", create_user_tampered)
    proof.accepted("ram", "GetUser (the refused user does not exist)", tampered_had_no_effect)


def prove_sts(proof, args):
    """AssumeRole as a RAM user, RDS with the temporary credentials, their refusals."""
    ram = RamClient(rpc_config(args))
    suffix = uuid.uuid4().hex[:10]
    user = f"proof-sts-{suffix}"
    role = f"proof-reader-{suffix}"
    session = {}

    # The account: a user that may only assume roles, a role that trusts it and may read RDS.
    with rpc_signatures(proof.algorithms, "ram"):
        ram.create_user(ram_models.CreateUserRequest(user_name=user))
        key = ram.create_access_key(ram_models.CreateAccessKeyRequest(user_name=user)).body.access_key
        ram.attach_policy_to_user(
            ram_models.AttachPolicyToUserRequest(
                policy_type="System", policy_name="AliyunSTSAssumeRoleAccess", user_name=user
            )
        )
        account = "1234567890123456"
        trust = json.dumps(
            {
                "Version": "1",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"RAM": [f"acs:ram::{account}:user/{user}"]},
                    }
                ],
            }
        )
        created = ram.create_role(
            ram_models.CreateRoleRequest(role_name=role, assume_role_policy_document=trust)
        ).body.role
        ram.attach_policy_to_role(
            ram_models.AttachPolicyToRoleRequest(
                policy_type="System", policy_name="AliyunRDSReadOnlyAccess", role_name=role
            )
        )
    sts = StsClient(rpc_config(args, key.access_key_id, key.access_key_secret))
    assume = sts_models.AssumeRoleRequest(
        role_arn=created.arn, role_session_name="sdk-proof", duration_seconds=900
    )

    def assume_role():
        with rpc_signatures(proof.algorithms, "sts"):
            body = sts.assume_role(assume).body
        credentials = body.credentials
        assert credentials.access_key_id.startswith("STS."), credentials.access_key_id
        assert credentials.security_token, "no SecurityToken"
        assert credentials.expiration.endswith("Z"), credentials.expiration
        session.update(
            id=credentials.access_key_id,
            secret=credentials.access_key_secret,
            token=credentials.security_token,
        )
        return {
            "AccessKeyId": credentials.access_key_id,
            "Expiration": credentials.expiration,
            "AssumedRoleUser": body.assumed_role_user.arn,
        }

    def assume_role_tampered():
        with rpc_signatures(proof.algorithms, "sts", tampered=True):
            sts.assume_role(assume)

    def temporary(token=None):
        """A client signing with the session's key and `token` (its own by default)."""
        return rpc_config(args, session.get("id"), session.get("secret"), token or session.get("token"))

    def caller_identity():
        with rpc_signatures(proof.algorithms, "sts"):
            body = StsClient(temporary()).get_caller_identity().body
        assert body.identity_type == "AssumedRoleUser", body.identity_type
        assert body.arn.endswith(f":assumed-role/{role}/sdk-proof"), body.arn
        return {"IdentityType": body.identity_type, "Arn": body.arn}

    def describe_instances():
        with rpc_signatures(proof.algorithms, "sts"):
            body = RdsClient(temporary()).describe_dbinstances(
                rds_models.DescribeDBInstancesRequest(region_id=args.region)
            ).body
        return {"TotalRecordCount": body.total_record_count}

    def create_instance():
        RdsClient(temporary()).create_dbinstance(
            rds_models.CreateDBInstanceRequest(
                region_id=args.region,
                engine="MySQL",
                engine_version="8.0",
                dbinstance_class="mysql.n2.small.1",
                dbinstance_storage=20,
                dbinstance_net_type="Intranet",
                security_iplist="10.0.0.0/8",
                pay_type="Postpaid",
            )
        )

    def with_another_token():
        token = session.get("token", "")
        RdsClient(temporary(token[:-1] + ("A" if token[-1:] != "A" else "B"))).describe_dbinstances(
            rds_models.DescribeDBInstancesRequest(region_id=args.region)
        )

    def after_the_session_ended():
        request = urllib.request.Request(f"{args.rpc_url}/__fake/expire-sessions", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 204, answer.status
        describe_instances()

    proof.accepted("sts", "AssumeRole", assume_role)
    proof.rejected("sts", "AssumeRole", assume_role_tampered)
    proof.accepted("sts", "GetCallerIdentity (with the STS credentials)", caller_identity)
    proof.accepted("sts", "RDS DescribeDBInstances (with the STS credentials)", describe_instances)
    proof.refused("sts", "RDS CreateDBInstance (the role may only read)", create_instance, "Forbidden.RAM")
    proof.refused(
        "sts",
        "RDS DescribeDBInstances (another security token)",
        with_another_token,
        "InvalidSecurityToken.MismatchWithAccessKey",
    )
    proof.refused(
        "sts",
        "RDS DescribeDBInstances (the session ended)",
        after_the_session_ended,
        "InvalidSecurityToken.Expired",
    )


def oss_config(args):
    """OSS configuration: the fake's endpoint over http, path-style addressing."""
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(
        args.access_key_id, args.access_key_secret
    )
    config.region = args.region
    config.endpoint = args.oss_url
    config.use_path_style = True
    config.disable_ssl = urlsplit(args.oss_url).scheme == "http"
    # One attempt: a refused call must not be retried into a different outcome.
    config.retry_max_attempts = 1
    return config


def prove_oss(proof, args):
    """PutBucket, PutObject, GetObject, ListObjectsV2, a tampered GetObject, DeleteObject, DeleteBucket."""
    client = oss.Client(oss_config(args))
    tampering = oss.Client(oss_config(args), signer=OneByteOffSignerV4())
    bucket = f"sdk-proof-{uuid.uuid4().hex[:12]}"
    key = "proof/hello world+1.txt"
    data = b"Hello from the official OSS SDK.\n"

    def put_bucket():
        result = client.put_bucket(
            oss.PutBucketRequest(
                bucket=bucket,
                acl="private",
                create_bucket_configuration=oss.CreateBucketConfiguration(storage_class="Standard"),
            )
        )
        assert result.status_code == 200, result.status_code
        return {"status": result.status_code, "RequestId": result.request_id}

    def put_object():
        # The SDK compares its CRC-64 of the data with the fake's x-oss-hash-crc64ecma.
        result = client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data))
        assert result.status_code == 200, result.status_code
        assert result.etag and result.etag.strip('"'), "no ETag"
        return {"ETag": result.etag, "hash_crc64": result.hash_crc64}

    def get_object():
        result = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
        with result.body as body:
            content = body.read()
        assert content == data, content
        return {"content_length": result.content_length, "ETag": result.etag}

    def list_objects():
        result = client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix="proof/"))
        keys = [entry.key for entry in result.contents or []]
        assert keys == [key], keys
        assert result.key_count == 1, result.key_count
        assert result.contents[0].size == len(data), result.contents[0].size
        return {"keys": keys, "KeyCount": result.key_count}

    def get_object_tampered():
        tampering.get_object(oss.GetObjectRequest(bucket=bucket, key=key))

    def delete_object():
        result = client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key=key))
        assert result.status_code == 204, result.status_code
        return {"status": result.status_code}

    def delete_bucket():
        result = client.delete_bucket(oss.DeleteBucketRequest(bucket=bucket))
        assert result.status_code == 204, result.status_code
        return {"status": result.status_code}

    with oss_signatures(proof.algorithms):
        proof.accepted("oss", "PutBucket", put_bucket)
        proof.accepted("oss", "PutObject", put_object)
        proof.accepted("oss", "GetObject", get_object)
        proof.accepted("oss", "ListObjectsV2", list_objects)
    proof.rejected("oss", "GetObject", get_object_tampered)
    with oss_signatures(proof.algorithms):
        proof.accepted("oss", "DeleteObject", delete_object)
        proof.accepted("oss", "DeleteBucket", delete_bucket)


def arguments():
    """Options, each defaulting to its environment variable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option, variable in [
        ("--rpc-url", "SKYBROKER_FAKE_RPC_URL"),
        ("--oss-url", "SKYBROKER_FAKE_OSS_URL"),
        ("--region", "SKYBROKER_FAKE_REGION"),
        ("--access-key-id", "SKYBROKER_FAKE_ACCESS_KEY_ID"),
        ("--access-key-secret", "SKYBROKER_FAKE_ACCESS_KEY_SECRET"),
    ]:
        parser.add_argument(option, default=os.environ.get(variable), help=f"default: ${variable}")
    args = parser.parse_args()
    missing = [name for name, value in vars(args).items() if not value]
    if missing:
        parser.error(f"missing: {', '.join(missing)}")
    return args


def main():
    args = arguments()
    proof = Proof()
    for prove in (prove_rds, prove_ram, prove_oss, prove_sts):
        prove(proof, args)

    failures = [call for call in proof.calls if not call["ok"]]
    sdks = {"rds", "ram", "oss", "sts"}
    for sdk in sorted(sdks):
        accepted = any(c["sdk"] == sdk and not c["tampered"] and c["ok"] for c in proof.calls)
        rejected = any(c["sdk"] == sdk and c["tampered"] and c["ok"] for c in proof.calls)
        if not (accepted and rejected):
            failures.append({"sdk": sdk, "error": "no accepted and rejected call both proven"})
    result = {
        "ok": not failures,
        "packages": {name: importlib.metadata.version(name) for name in PACKAGES},
        "signature_algorithms": proof.algorithms,
        "calls": proof.calls,
        "failures": failures,
    }
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
