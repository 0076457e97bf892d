"""The cloudhsmv2 API through boto3, as an SDK user drives it.

Run by TestBoto3 (boto3_test.go) against a control plane with in-process
HSMs. Environment: COFFER_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, WORK (a scratch directory). Prints OK at the end.
"""
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse

import boto3
import botocore.exceptions

ENDPOINT = os.environ["COFFER_ENDPOINT"]
WORK = os.environ["WORK"]


def client(region="us-east-1", secret=None):
    return boto3.client(
        "cloudhsmv2",
        endpoint_url=ENDPOINT,
        region_name=region,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
    )


hsm = client()


def expect_error(code, fn, **kwargs):
    try:
        fn(**kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{fn.__name__}: got {got} ({e}), want {code}"
        assert e.response["Error"]["Message"], "an error without a message"
        print(f"  {fn.__name__} refused as expected: {got}: {e.response['Error']['Message'][:100]}")
        return
    raise AssertionError(f"{fn.__name__}({kwargs}) succeeded, want {code}")


def wait_cluster(cid, done, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        c = hsm.describe_clusters(Filters={"clusterIds": [cid]})["Clusters"][0]
        if done(c):
            return c
        time.sleep(0.1)
    raise AssertionError(f"cluster {cid} never became {what}: {c}")


# Create clusters; list them a page at a time, by hand and by paginator.
# (Each call differs: boto3 signs no nonce, so identical changing calls in
# one second have one signature, and the repeat is refused as a replay.)
ids = []
for i in range(3):
    c = hsm.create_cluster(HsmType="hsm1.medium", SubnetIds=["subnet-0aaaaaaa", "subnet-0bbbbbbb"],
                           TagList=[{"Key": "Environment", "Value": "Test"}, {"Key": "Name", "Value": f"walk-{i}"}])["Cluster"]
    assert c["State"] == "CREATE_IN_PROGRESS", c
    ids.append(c["ClusterId"])
seen, token = [], None
while True:
    kw = {"MaxResults": 1}
    if token:
        kw["NextToken"] = token
    page = hsm.describe_clusters(**kw)
    assert len(page["Clusters"]) <= 1
    seen += [c["ClusterId"] for c in page["Clusters"]]
    token = page.get("NextToken")
    if not token:
        break
assert seen == ids, (seen, ids)
paged = [c["ClusterId"] for p in hsm.get_paginator("describe_clusters").paginate(PaginationConfig={"PageSize": 2})
         for c in p["Clusters"]]
assert paged == ids, paged
print("pagination: ok")

cid = ids[0]
wait_cluster(cid, lambda c: c["State"] == "UNINITIALIZED", "UNINITIALIZED")
h = hsm.create_hsm(ClusterId=cid, AvailabilityZone="us-east-1a")["Hsm"]
assert h["State"] == "CREATE_IN_PROGRESS" and h["EniIp"], h
c = wait_cluster(cid, lambda c: c.get("Certificates", {}).get("ClusterCsr"), "holding a CSR")

# Sign the CSR with an openssl CA, as the CloudHSM guide does.
csr = os.path.join(WORK, "cluster.csr")
with open(csr, "w") as f:
    f.write(c["Certificates"]["ClusterCsr"])
run = lambda *a: subprocess.run(a, check=True, cwd=WORK, capture_output=True)
run("openssl", "genrsa", "-out", "ca.key", "2048")
run("openssl", "req", "-new", "-x509", "-key", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=boto3 CA")
run("openssl", "x509", "-req", "-in", "cluster.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "cluster.crt", "-days", "30", "-sha256")
signed = open(os.path.join(WORK, "cluster.crt")).read()
anchor = open(os.path.join(WORK, "ca.crt")).read()

# Each error type for bad input.
expect_error("CloudHsmResourceNotFoundException", hsm.create_hsm, ClusterId="cluster-aaaaaaaaaaa", AvailabilityZone="us-east-1a")
expect_error("CloudHsmInvalidRequestException", hsm.create_cluster, HsmType="hsm1.medium", SubnetIds=["subnet-12345678"])
expect_error("CloudHsmInvalidRequestException", hsm.create_hsm, ClusterId=cid, AvailabilityZone="us-east-1c")
expect_error("CloudHsmInvalidRequestException", hsm.initialize_cluster, ClusterId=cid, SignedCert="not a certificate", TrustAnchor=anchor)
expect_error("CloudHsmInvalidRequestException", hsm.initialize_cluster, ClusterId=cid, SignedCert=signed, TrustAnchor=signed)
expect_error("CloudHsmTagException", hsm.tag_resource, ResourceId=cid, TagList=[{"Key": "aws:reserved", "Value": "x"}])
expect_error("CloudHsmInvalidRequestException", hsm.describe_clusters, Filters={"colour": ["blue"]})
expect_error("InvalidSignatureException", client(secret="not-the-secret-at-all").describe_clusters)

r = hsm.initialize_cluster(ClusterId=cid, SignedCert=signed, TrustAnchor=anchor)
assert r["State"] == "INITIALIZE_IN_PROGRESS", r
c = wait_cluster(cid, lambda c: c["State"] == "INITIALIZED", "INITIALIZED")
assert c["Certificates"]["ClusterCertificate"].strip() == signed.strip()
print("initialization: ok")

# Tags.
hsm.tag_resource(ResourceId=cid, TagList=[{"Key": f"k{i}", "Value": str(i)} for i in range(5)])
tags = [t for p in hsm.get_paginator("list_tags").paginate(ResourceId=cid, PaginationConfig={"PageSize": 2}) for t in p["TagList"]]
assert [t["Key"] for t in tags] == ["Environment", "Name", "k0", "k1", "k2", "k3", "k4"], tags
hsm.untag_resource(ResourceId=cid, TagKeyList=["k0", "k1"])
assert len(hsm.list_tags(ResourceId=cid)["TagList"]) == 5
print("tags: ok")

# Backups: one was made at initialization.
backups = [b for p in hsm.get_paginator("describe_backups").paginate(Filters={"clusterIds": [cid]}) for b in p["Backups"]]
assert len(backups) == 1, backups
bid = backups[0]["BackupId"]
deadline = time.time() + 30
while hsm.describe_backups(Filters={"backupIds": [bid]})["Backups"][0]["BackupState"] != "READY":
    assert time.time() < deadline
    time.sleep(0.1)
assert hsm.modify_backup_attributes(BackupId=bid, NeverExpires=True)["Backup"]["NeverExpires"] is True
assert hsm.delete_backup(BackupId=bid)["Backup"]["BackupState"] == "PENDING_DELETION"
assert hsm.restore_backup(BackupId=bid)["Backup"]["BackupState"] == "READY"
copy = hsm.copy_backup_to_region(DestinationRegion="us-west-2", BackupId=bid)["DestinationBackup"]
assert copy["SourceBackup"] == bid and copy["SourceRegion"] == "us-east-1", copy
west = client("us-west-2").describe_backups(Filters={"sourceBackupIds": [bid]})["Backups"]
assert len(west) == 1, west
assert copy["CreateTimestamp"] == backups[0]["CreateTimestamp"], (copy, backups[0])
deadline = time.time() + 30
while client("us-west-2").describe_backups(Filters={"sourceBackupIds": [bid]})["Backups"][0]["BackupState"] != "READY":
    assert time.time() < deadline
    time.sleep(0.1)
# A cluster from the copy starts initialized, with the source's certificates.
restored = client("us-west-2").create_cluster(HsmType="hsm1.medium", SubnetIds=["subnet-1aaaaaaa"], SourceBackupId=west[0]["BackupId"])["Cluster"]
assert restored["State"] == "INITIALIZED" and restored["SourceBackupId"] == west[0]["BackupId"], restored
assert restored["Certificates"]["ClusterCertificate"].strip() == signed.strip(), restored["Certificates"]
expect_error("CloudHsmResourceNotFoundException", client("us-west-2").create_cluster, HsmType="hsm1.medium",
             SubnetIds=["subnet-1aaaaaaa"], SourceBackupId="backup-aaaaaaaaaaa")
expect_error("CloudHsmResourceNotFoundException", hsm.delete_backup, BackupId="backup-aaaaaaaaaaa")
# Older botocore models (Debian 12's) lack BackupArn and the resource
# policy operations.
arn = backups[0].get("BackupArn", f"arn:aws:cloudhsm:us-east-1:{os.environ['ACCOUNT']}:backup/{bid}")
if hasattr(hsm, "put_resource_policy"):
    hsm.put_resource_policy(ResourceArn=arn, Policy='{"Version":"2012-10-17","Statement":[]}')
    assert "2012-10-17" in hsm.get_resource_policy(ResourceArn=arn)["Policy"]
    hsm.delete_resource_policy(ResourceArn=arn)
else:
    print("  (this botocore has no resource policy operations)")
print("backups: ok")

# A request boto3 signed, sent again byte for byte: a changing one is
# refused (and carried out once), a read is served again.
def replay(call, **kwargs):
    sent = {}

    def keep(request, **_):
        sent.update(url=request.url, headers=dict(request.headers), body=request.body)

    hsm.meta.events.register("before-send", keep)
    try:
        first = call(**kwargs)
    finally:
        hsm.meta.events.unregister("before-send", keep)
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(sent["url"]).netloc, timeout=30)
    conn.request("POST", "/", body=sent["body"], headers={k: v.decode() if isinstance(v, bytes) else v for k, v in sent["headers"].items()})
    resp = conn.getresponse()
    return first, resp.status, json.loads(resp.read() or b"{}")


before = len(hsm.describe_clusters()["Clusters"])
_, status, body = replay(hsm.create_cluster, HsmType="hsm1.medium", SubnetIds=["subnet-0aaaaaaa"])
assert status == 403 and body.get("__type") == "InvalidSignatureException", (status, body)
assert len(hsm.describe_clusters()["Clusters"]) == before + 1
_, status, body = replay(hsm.describe_clusters)
assert status == 200 and len(body["Clusters"]) == before + 1, (status, body)
print("replay: ok")

# Delete the HSM by its ENI address, then the cluster.
assert hsm.delete_hsm(ClusterId=cid, EniIp=h["EniIp"])["HsmId"] == h["HsmId"]
wait_cluster(cid, lambda c: not c["Hsms"], "without HSMs")
assert hsm.delete_cluster(ClusterId=cid)["Cluster"]["State"] == "DELETE_IN_PROGRESS"
wait_cluster(cid, lambda c: c["State"] == "DELETED", "DELETED")
print("OK")
