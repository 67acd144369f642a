# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""backup: the repository (manifests, catalog, chains, verify), retention as a table, and whole runs of
stopped VMs on libvirt's test driver with real qemu-img (full points, idempotency, compression, retention,
failures that leave nothing)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import os
import subprocess
import time

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._backup import repo as _repo
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.backup import BackupResource
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.params import check_params, decide_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.retention import check_policy, plan_retention
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import sha256_file

MiB = 1024 ** 2
VM = "virtops-bk1"


def run_argv(argv, **_kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def qemu_io(path, fmt, *commands):
    argv = ["qemu-io", "-f", fmt]
    for command in commands:
        argv += ["-c", command]
    subprocess.run(argv + [path], check=True, stdout=subprocess.DEVNULL)


def compare(first, second):
    return subprocess.run(["qemu-img", "compare", "-U", first, second], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False).returncode == 0


def params(**kw):
    base = dict(uri="test:///default", vm=VM, repository=None, point=None, mode="auto", full_every=None,
                full_max_age_days=None, compression="none", quiesce=False, retention=None, state="present",
                timeout=None, progress_file=None)
    base.update(kw)
    return base


def run(conn, check=False, diff=False, **kw):
    ctx = Context(conn=conn, params=params(**kw), check_mode=check, diff=diff, run_command=run_argv)
    return reconcile(BackupResource(ctx), check_mode=check, want_diff=diff)


def domain_xml(name, disks):
    devices = "".join(
        "<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/>"
        "<target dev='%s' bus='virtio'/></disk>" % (fmt, path, target) for target, path, fmt in disks)
    return ("<domain type='test'><name>%s</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os><devices>%s"
            "<disk type='file' device='cdrom'><source file='/nonexistent/seed.iso'/><target dev='sda' bus='sata'/>"
            "<readonly/></disk><graphics type='vnc' passwd='s3cret-pass'/></devices></domain>" % (name, devices))


@pytest.fixture
def stopped_vm(test_conn, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    vda = str(src / "vda.qcow2")
    vdb = str(src / "vdb.raw")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", vda, "64M"], check=True)
    qemu_io(vda, "qcow2", "write -P 0x11 0 2M", "write -P 0x12 40M 1M")
    with open(vdb, "wb") as handle:
        handle.truncate(16 * MiB)
        handle.seek(4 * MiB)
        handle.write(b"\x33" * MiB)
    dom = test_conn.defineXML(domain_xml(VM, [("vda", vda, "qcow2"), ("vdb", vdb, "raw")]))
    yield dict(dom=dom, vda=vda, vdb=vdb, repo=str(tmp_path / "repo"))
    dom.undefine()


# --- retention: a table ------------------------------------------------------------------------------

DAY = 86400
T0 = calendar.timegm((2026, 12, 1, 3, 0, 0))  # a Tuesday


def pts(*spec):
    """``("a", 0, None), ("b", 1, "a")``: name, day offset (fractions allowed), parent."""
    return [dict(name=n, time=T0 + d * DAY, parent=p) for n, d, p in spec]


CHAIN7 = pts(("d1", 0, None), ("d2", 1, "d1"), ("d3", 2, "d2"), ("d4", 3, "d3"), ("d5", 4, "d4"), ("d6", 5, "d5"),
             ("d7", 6, "d6"))
FULLS7 = pts(*[("f%d" % i, i, None) for i in range(1, 8)])


@pytest.mark.parametrize("points,policy,keep", [
    (FULLS7, None, ["f%d" % i for i in range(1, 8)]),
    (FULLS7, dict(keep_last=2), ["f6", "f7"]),
    (FULLS7, dict(keep_last=0), ["f7"]),  # the newest always stays
    (FULLS7, dict(keep_daily=3), ["f5", "f6", "f7"]),
    # f1 is Wednesday 2026-12-02: f1..f5 are ISO week 49, f6 and f7 (Monday, Tuesday) week 50
    (FULLS7, dict(keep_last=1, keep_weekly=2), ["f5", "f7"]),
    (CHAIN7, dict(keep_last=1), ["d%d" % i for i in range(1, 8)]),  # the chain of d7 needs every point
    (pts(("a", 0, None), ("b", 0.1, "a"), ("c", 1, None), ("d", 1.1, "c")), dict(keep_last=1), ["c", "d"]),
    (pts(("a", 0, None), ("b", 0.1, "a"), ("c", 0.2, "b"), ("d", 1, None)), dict(keep_daily=2), ["a", "b", "c", "d"]),
    (pts(("a", 0, None), ("b", 0.5, None), ("c", 31, None)), dict(keep_monthly=2), ["b", "c"]),
    (pts(("a", 0, None), ("b", 0.5, None), ("c", 31, None)), dict(keep_monthly=1), ["c"]),
])
def test_retention_table(points, policy, keep):
    decision = plan_retention(points, check_policy(policy))
    assert decision["keep"] == keep
    assert sorted(decision["keep"] + decision["remove"]) == sorted(p["name"] for p in points)


def test_retention_reasons_name_the_dependant():
    decision = plan_retention(CHAIN7, dict(keep_last=1))
    assert decision["reasons"]["d7"] == ["last"]
    assert decision["reasons"]["d6"] == ["needed by d7"]
    assert decision["reasons"]["d1"] == ["needed by d2"]


@pytest.mark.parametrize("policy,text", [
    (dict(keep_hourly=1), "unknown rule"),
    (dict(keep_last=-1), "whole number"),
    (dict(keep_last=True), "whole number"),
])
def test_bad_policy(policy, text):
    with pytest.raises(InvalidInputError, match=text):
        check_policy(policy)


# --- options and the choice of mode ----------------------------------------------------------------


@pytest.mark.parametrize("kw,text", [
    (dict(repository="relative"), "absolute path"),
    (dict(repository="/r", point=".hidden"), "point must be"),
    (dict(repository="/r", point="a/b"), "point must be"),
    (dict(repository="/r", mode="sometimes"), "mode must be"),
    (dict(repository="/r", compression="xz"), "compression must be"),
    (dict(repository="/r", full_every=0), "at least 1"),
    (dict(repository="/r", state="pruned"), "needs retention"),
    (dict(repository="/r", state="pruned", point="p", retention=dict(keep_last=1)), "not with state=pruned"),
])
def test_bad_parameters(kw, text):
    with pytest.raises(InvalidInputError, match=text):
        check_params(params(**kw))


def manifest(name, mode, parent=None, checkpoint=None, epoch=0, uuid="u1", targets=(("vda", 64 * MiB),)):
    return dict(generator=_repo.GENERATOR, point=name, mode=mode, parent=parent, checkpoint=checkpoint,
                created_epoch=epoch, vm=dict(name=VM, uuid=uuid),
                files=[dict(name="%s.qcow2" % t, kind="disk", target=t, virtual_size=s, size=0) for t, s in targets])


def facts(found, **kw):
    base = dict(active=True, qcow2=True, uuid="u1", checkpoints=["virtops-backup-p2"], targets=[["vda", 64 * MiB]],
                points=found)
    base.update(kw)
    return base


def fake_points(tmp_path, *manifests):
    out = []
    for data in manifests:
        directory = tmp_path / data["point"]
        directory.mkdir()
        (directory / "vda.qcow2").write_bytes(b"")
        out.append(dict(name=data["point"], manifest=data, directory=str(directory)))
    return out


@pytest.mark.parametrize("change,mode,text", [
    (dict(), "incremental", "incremental on p2"),
    (dict(active=False), "full", "not running"),
    (dict(qcow2=False), "full", "not every disk is qcow2"),
    (dict(uuid="u2"), "full", "another UUID"),
    (dict(checkpoints=[]), "full", "is gone"),
    (dict(targets=[["vda", 128 * MiB]]), "full", "disks changed"),
    (dict(points=[]), "full", "no point yet"),
])
def test_decide_mode(tmp_path, change, mode, text):
    points = fake_points(tmp_path, manifest("p1", "full", epoch=1), manifest("p2", "incremental", "p1",
                                                                              "virtops-backup-p2", epoch=2))
    opts = check_params(params(repository="/r"))
    got, _parent, why = decide_mode(opts, facts(change.pop("points", points), **change), now=3)
    assert got == mode
    assert text in why


def test_decide_mode_full_every_and_age(tmp_path):
    points = fake_points(tmp_path, manifest("p1", "full", epoch=1), manifest("p2", "incremental", "p1",
                                                                              "virtops-backup-p2", epoch=2))
    got = decide_mode(check_params(params(repository="/r", full_every=2)), facts(points), now=3)
    assert got[0] == "full" and "full_every=2" in got[2]
    got = decide_mode(check_params(params(repository="/r", full_max_age_days=1)), facts(points), now=1 + 86400)
    assert got[0] == "full" and "older than 1 day" in got[2]
    with pytest.raises(ConflictError, match="not possible.*is gone"):
        decide_mode(check_params(params(repository="/r", mode="incremental")), facts(points, checkpoints=[]), now=3)


# --- whole runs: a stopped VM on the test driver ---------------------------------------------------


def test_stopped_full_point_four_runs(test_conn, stopped_vm):
    repo = stopped_vm["repo"]
    first = run(test_conn, check=True, repository=repo, point="p1")
    assert first["changed"] and not os.path.exists(repo)
    assert first["point"]["mode"] == "full" and "not running" in first["point"]["reason"]
    done = run(test_conn, repository=repo, point="p1")
    assert done["changed"] and done["points"] == ["p1"]
    again = run(test_conn, check=True, repository=repo, point="p1")
    assert not again["changed"]
    assert not run(test_conn, repository=repo, point="p1")["changed"]
    directory = os.path.join(repo, VM, "p1")
    assert sorted(os.listdir(directory)) == ["domain.xml", "manifest.json", "vda.qcow2", "vdb.qcow2"]
    assert sorted(os.listdir(os.path.join(repo, VM))) == ["p1"]  # no temporary directory left
    data = json.loads(open(os.path.join(directory, "manifest.json")).read())
    assert data["mode"] == "full" and data["parent"] is None and data["checkpoint"] is None
    assert data["vm"]["uuid"] == stopped_vm["dom"].UUIDString()
    for entry in data["files"]:
        assert sha256_file(os.path.join(directory, entry["name"])) == entry["sha256"]
        assert os.path.getsize(os.path.join(directory, entry["name"])) == entry["size"]
    assert compare(stopped_vm["vda"], os.path.join(directory, "vda.qcow2"))
    assert compare(stopped_vm["vdb"], os.path.join(directory, "vdb.qcow2"))
    assert "s3cret-pass" not in open(os.path.join(directory, "domain.xml")).read()
    assert oct(os.stat(directory).st_mode & 0o777) == "0o700"
    assert oct(os.stat(os.path.join(directory, "vda.qcow2")).st_mode & 0o777) == "0o600"


def test_incremental_of_a_stopped_vm_is_refused(test_conn, stopped_vm):
    run(test_conn, repository=stopped_vm["repo"], point="p1")
    with pytest.raises(ConflictError, match="not running"):
        run(test_conn, repository=stopped_vm["repo"], point="p2", mode="incremental")
    assert sorted(os.listdir(os.path.join(stopped_vm["repo"], VM))) == ["p1"]


@pytest.mark.parametrize("compression,qcow2_type", [("zstd", "zstd"), ("gzip", "zlib")])
def test_compression(test_conn, stopped_vm, compression, qcow2_type):
    run(test_conn, repository=stopped_vm["repo"], point="c", compression=compression)
    path = os.path.join(stopped_vm["repo"], VM, "c", "vda.qcow2")
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", path], stdout=subprocess.PIPE,
                                     check=True).stdout)
    assert info["format-specific"]["data"]["compression-type"] == qcow2_type
    assert compare(stopped_vm["vda"], path)


def test_generated_names_and_retention(test_conn, stopped_vm):
    repo = stopped_vm["repo"]
    for name in ("a", "b", "c"):
        run(test_conn, repository=repo, point=name)
        time.sleep(0.01)
    predicted = run(test_conn, check=True, repository=repo, state="pruned", retention=dict(keep_last=1))
    assert predicted["changed"] and predicted["removed"] == ["a", "b"]
    assert sorted(os.listdir(os.path.join(repo, VM))) == ["a", "b", "c"]
    pruned = run(test_conn, repository=repo, state="pruned", retention=dict(keep_last=1))
    assert pruned["removed"] == ["a", "b"] and pruned["points"] == ["c"]
    assert not run(test_conn, repository=repo, state="pruned", retention=dict(keep_last=1))["changed"]
    made = run(test_conn, repository=repo, retention=dict(keep_last=2))
    assert made["point"]["name"].endswith("Z") and len(made["points"]) == 2


def test_a_failed_copy_leaves_nothing(test_conn, stopped_vm):
    # the second disk's image goes away between planning and copying: qemu-img fails on it
    ctx = Context(conn=test_conn, params=params(repository=stopped_vm["repo"], point="p1"), run_command=run_argv)
    resource = BackupResource(ctx)
    current = resource.read()
    os.unlink(stopped_vm["vdb"])
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Plan
    plan = Plan()
    resource.plan(current, resource.desired(current), resource.compare(current, resource.desired(current)), plan)
    with pytest.raises(Exception, match="qemu-img convert of disk vdb failed"):
        plan.execute()
    assert os.listdir(os.path.join(stopped_vm["repo"], VM)) == []


def test_a_directory_that_is_not_a_point(test_conn, stopped_vm):
    os.makedirs(os.path.join(stopped_vm["repo"], VM, "p1"))
    with pytest.raises(ConflictError, match="not a point"):
        run(test_conn, repository=stopped_vm["repo"], point="p1")
