"""The IAM policies of deploy/aws/ grant exactly what the code calls: every boto3 call on S3 or
Kinesis in the product's packages (read with ``ast``; the local world, sandbox/, is not the
product) is allowed by the policy of the place that makes it, and every allowed action is
needed by some call. The lake is read only under its prefixes, checkpoints only under theirs,
and the checkpoint bucket denies deletion explicitly."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from ingestion.contract import S3_PREFIXES
from state_service.checkpoints import PREFIX as CHECKPOINT_PREFIX

ROOT = Path(__file__).resolve().parents[2]
AWS = ROOT / "deploy" / "aws"
PACKAGES = ("tokenwatch", "state_service", "ingestion", "quality", "reporting", "orchestration")
POLICIES = {"ingestion": "ingestion-policy.json", "checkpoint": "checkpoint-policy.json",
            "audit-pack": "audit-pack-policy.json"}

#: Which policy grants the calls made at a place: ``path`` or ``path:function``. A new place
#: that calls AWS fails test_every_call_is_allowed until it is named here.
POLICY_OF = {
    "ingestion/sources/s3.py": "ingestion",
    "ingestion/sources/kinesis.py": "ingestion",
    "tokenwatch/cli/doctor_checks.py:check_lake": "ingestion",
    "tokenwatch/cli/doctor_checks.py:check_stream": "ingestion",
    "state_service/checkpoints.py": "checkpoint",
    "tokenwatch/cli/audit.py": "checkpoint",
    "tokenwatch/cli/doctor_checks.py:check_checkpoint_bucket": "checkpoint",
    "orchestration/defs/audit/pack.py": "audit-pack",
}
#: Functions only the local world calls (each call of them sits under an ``env == "local"``
#: test: test_local_only_functions_are_only_called_locally): their AWS calls need no grant.
LOCAL_ONLY = {"state_service/checkpoints.py:ensure_bucket"}

#: boto3 client method -> the IAM actions it needs (the Service Authorization Reference).
#: ``upload_file`` is boto3's managed transfer: PutObject, multipart included, and an abort
#: when a part fails.
ACTIONS = {
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "upload_file": {"s3:PutObject", "s3:AbortMultipartUpload"},
    "list_objects_v2": {"s3:ListBucket"},
    "head_bucket": {"s3:ListBucket"},
    "list_object_versions": {"s3:ListBucketVersions"},
    "get_object_lock_configuration": {"s3:GetBucketObjectLockConfiguration"},
    "create_bucket": {"s3:CreateBucket"},
    "describe_stream": {"kinesis:DescribeStream"},
    "describe_stream_summary": {"kinesis:DescribeStreamSummary"},
    "list_shards": {"kinesis:ListShards"},
    "get_shard_iterator": {"kinesis:GetShardIterator"},
    "get_records": {"kinesis:GetRecords"},
}
#: Keyword arguments that change the action: a version's read, a lock or hold set on write.
KEYWORD_ACTIONS = {
    ("get_object", "VersionId"): ({"s3:GetObjectVersion"}, {"s3:GetObject"}),
    ("head_object", "VersionId"): ({"s3:GetObjectVersion"}, {"s3:GetObject"}),
    ("put_object", "ObjectLockMode"): ({"s3:PutObjectRetention"}, set()),
    ("put_object", "ObjectLockRetainUntilDate"): ({"s3:PutObjectRetention"}, set()),
    ("put_object", "ObjectLockLegalHoldStatus"): ({"s3:PutObjectLegalHold"}, set()),
}
TRANSFER_METHODS = {"upload_file", "upload_fileobj", "download_file", "download_fileobj"}


def _client_methods() -> set[str]:
    session = botocore.session.get_session()
    return {xform_name(op) for service in ("s3", "kinesis")
            for op in session.get_service_model(service).operation_names} | TRANSFER_METHODS


@dataclass(frozen=True)
class Call:
    place: str  # path:function
    line: int
    method: str
    keywords: frozenset[str]

    @property
    def actions(self) -> set[str]:
        assert self.method in ACTIONS, f"{self}: add the IAM actions of {self.method} to ACTIONS"
        needed = set(ACTIONS[self.method])
        for keyword in self.keywords:
            added, replaced = KEYWORD_ACTIONS.get((self.method, keyword), (set(), set()))
            needed = (needed - replaced) | added
        return needed

    def __str__(self) -> str:
        return f"{self.place}:{self.line} {self.method}"


def aws_calls() -> list[Call]:
    """Every S3 or Kinesis client call in the product's packages, with its enclosing function.
    ``get_paginator("op")`` counts as a call of ``op``."""
    methods, found = _client_methods(), []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            rel = path.relative_to(ROOT).as_posix()
            for top in tree.body:
                function = top.name if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef |
                                                  ast.ClassDef) else "<module>"
                for node in ast.walk(top):
                    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                        continue
                    method = node.func.attr
                    if method == "get_paginator" and node.args and isinstance(
                            node.args[0], ast.Constant):
                        method = node.args[0].value
                    elif method not in methods:
                        continue
                    keywords = frozenset(k.arg for k in node.keywords if k.arg)
                    found.append(Call(f"{rel}:{function}", node.lineno, method, keywords))
    return found


def policy_of(call: Call) -> str | None:
    path = call.place.split(":")[0]
    return POLICY_OF.get(call.place) or POLICY_OF.get(path)


def load(name: str) -> dict:
    return json.loads((AWS / POLICIES[name]).read_text())


def statements(name: str, effect: str = "Allow") -> list[dict]:
    return [s for s in load(name)["Statement"] if s["Effect"] == effect]


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def allowed(name: str) -> set[str]:
    return {a for s in statements(name) for a in _list(s["Action"])}


def resources_of(name: str, action: str) -> set[str]:
    return {r for s in statements(name) if action in _list(s["Action"])
            for r in _list(s["Resource"])}


CALLS = aws_calls()


def test_the_scan_sees_the_calls():
    methods = {c.method for c in CALLS}
    assert {"get_object", "list_objects_v2", "list_shards", "get_records", "put_object",
            "list_object_versions", "upload_file"} <= methods
    places = {c.place for c in CALLS} | {c.place.split(":")[0] for c in CALLS}
    assert set(POLICY_OF) <= places, "POLICY_OF names a place that no longer calls AWS"


@pytest.mark.parametrize("name", POLICIES)
def test_a_policy_is_valid_and_names_no_wildcard(name):
    policy = load(name)
    assert set(policy) == {"Version", "Statement"}
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        assert statement["Effect"] in ("Allow", "Deny")
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in _list(statement["Action"]):
            assert re.fullmatch(r"(s3|kinesis):[A-Z][A-Za-z]+", action), action
        for resource in _list(statement["Resource"]):
            assert resource != "*" and resource.startswith(("arn:aws:s3:::", "arn:aws:kinesis:"))
            assert not re.search(r":::\*|/\*\*|^arn:aws:s3:::\$\{\w+\}\*$", resource), resource


def test_every_call_is_allowed_by_its_policy():
    missing = []
    for call in CALLS:
        if call.place in LOCAL_ONLY:
            continue
        name = policy_of(call)
        assert name is not None, f"{call}: calls AWS; say in POLICY_OF which policy grants it"
        missing += [f"{call} needs {a} ({POLICIES[name]})" for a in sorted(call.actions)
                    if a not in allowed(name)]
    assert missing == []


@pytest.mark.parametrize("name", POLICIES)
def test_every_allowed_action_is_needed_by_a_call(name):
    needed = {a for c in CALLS if c.place not in LOCAL_ONLY and policy_of(c) == name
              for a in c.actions}
    assert allowed(name) - needed == set(), f"{POLICIES[name]} allows more than the code calls"


def test_local_only_functions_are_only_called_locally():
    """Each call of a LOCAL_ONLY function is inside ``if ... == "local":``."""
    names = {place.split(":")[1] for place in LOCAL_ONLY}
    seen = 0
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            guarded = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.If) and "local" in ast.unparse(node.test):
                    guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) in names:
                    seen += 1
                    assert id(node) in guarded, f"{path}:{node.lineno} calls it in production"
    assert seen >= 2


def test_ingestion_reads_only_the_lake_prefixes_and_the_stream():
    prefixes = sorted(f"{p}/*" for p in S3_PREFIXES.values())
    assert resources_of("ingestion", "s3:GetObject") == {
        f"arn:aws:s3:::${{LakeBucket}}/{p}" for p in prefixes}
    (listing,) = [s for s in statements("ingestion") if "s3:ListBucket" in _list(s["Action"])]
    assert listing["Resource"] == "arn:aws:s3:::${LakeBucket}"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": prefixes}}
    kinesis = {a for a in allowed("ingestion") if a.startswith("kinesis:")}
    assert {r for a in kinesis for r in resources_of("ingestion", a)} == {
        "arn:aws:kinesis:${Region}:${Account}:stream/${StreamName}"}
    writes = re.compile(r":(Put|Delete|Create|Update|Abort|Restore|Merge|Split|Add|Remove)")
    assert not [a for a in allowed("ingestion") if writes.search(a)]


def test_checkpoints_are_written_and_read_only_under_their_prefix():
    objects = {a for a in allowed("checkpoint") if "Object" in a and "Bucket" not in a}
    assert objects == {"s3:PutObject", "s3:PutObjectRetention", "s3:GetObjectVersion"}
    for action in objects:
        assert resources_of("checkpoint", action) == {
            f"arn:aws:s3:::${{AuditBucket}}/{CHECKPOINT_PREFIX}*"}
    (versions,) = [s for s in statements("checkpoint")
                   if "s3:ListBucketVersions" in _list(s["Action"])]
    assert versions["Condition"] == {"StringEquals": {"s3:prefix": CHECKPOINT_PREFIX}}


@pytest.mark.parametrize("name,bucket", [("checkpoint", "AuditBucket"),
                                         ("audit-pack", "AuditPackBucket")])
def test_the_audit_buckets_deny_deletion_explicitly(name, bucket):
    denied = {a for s in statements(name, "Deny") for a in _list(s["Action"])}
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
            "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration"} <= denied
    for statement in statements(name, "Deny"):
        assert set(_list(statement["Resource"])) == {f"arn:aws:s3:::${{{bucket}}}",
                                                    f"arn:aws:s3:::${{{bucket}}}/*"}
    assert not denied & allowed(name)


def test_every_placeholder_is_documented():
    readme = (AWS / "README.md").read_text()
    used = {m for name in POLICIES for m in re.findall(r"\$\{(\w+)\}",
                                                       (AWS / POLICIES[name]).read_text())}
    assert used == {"Account", "Region", "LakeBucket", "StreamName", "AuditBucket",
                    "AuditPackBucket"}
    for placeholder in used:
        assert f"`${{{placeholder}}}`" in readme, placeholder
    for name in POLICIES.values():
        assert f"`{name}`" in readme
