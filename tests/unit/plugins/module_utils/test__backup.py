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
    points = fake_points(tmp_path, manifest("p1", "full", epoch=1),
                         manifest("p2", "incremental", "p1", "virtops-backup-p2", epoch=2))
    opts = check_params(params(repository="/r"))
    got, _parent, why = decide_mode(opts, facts(change.pop("points", points), **change), now=3)
    assert got == mode
    assert text in why


def test_decide_mode_full_every_and_age(tmp_path):
    points = fake_points(tmp_path, manifest("p1", "full", epoch=1),
                         manifest("p2", "incremental", "p1", "virtops-backup-p2", epoch=2))
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
    pruned = run(None, repository=repo, state="pruned", retention=dict(keep_last=1))  # no libvirt connection
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


# --- chains, the catalog, verify and restore ---------------------------------------------------------

from ansible_collections.virtops.libvirt.plugins.module_utils._backup import restore as _restore  # noqa: E402
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.info import gather_backup_info  # noqa: E402
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt  # noqa: E402
from ansible_collections.virtops.libvirt.plugins.module_utils._import import vm_import as _vm_import  # noqa: E402

POOL = "default-pool"


def add_incremental(repo, name, parent, writes, epoch, backing=None):
    """What a running VM's incremental job leaves: a qcow2 overlay on the parent's file with the changed clusters,
    the definition and a manifest (written here by hand, the job needs a running QEMU)."""
    base = os.path.join(repo, VM)
    directory = os.path.join(base, name)
    os.mkdir(directory)
    disk = os.path.join(directory, "vda.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing or "../%s/vda.qcow2" % parent, "-F",
                    "qcow2", disk], check=True)
    qemu_io(disk, "qcow2", *writes)
    parent_manifest = json.loads(open(os.path.join(base, parent, "manifest.json")).read())
    with open(os.path.join(directory, "domain.xml"), "w") as handle:
        handle.write(open(os.path.join(base, parent, "domain.xml")).read())
    files = []
    for entry in parent_manifest["files"]:
        if entry["kind"] == "nvram" or (entry["kind"] == "disk" and entry["target"] != "vda"):
            continue
        path = os.path.join(directory, entry["name"])
        files.append(dict(entry, size=os.path.getsize(path), sha256=sha256_file(path)))
    data = dict(parent_manifest, point=name, mode="incremental", parent=parent, checkpoint="virtops-backup-" + name,
                created_epoch=epoch, created=_repo.iso(epoch), files=files)
    with open(os.path.join(directory, "manifest.json"), "w") as handle:
        json.dump(data, handle)
    return disk


@pytest.fixture
def chain(test_conn, tmp_path, undefine_for_test_driver):
    """A VM with one disk; p1 (full, by the module), p2 and p3 (incremental); and the disk as p3 saw it."""
    vda = str(tmp_path / "vda.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", vda, "64M"], check=True)
    qemu_io(vda, "qcow2", "write -P 0x11 0 4M")
    dom = test_conn.defineXML(domain_xml(VM, [("vda", vda, "qcow2")]))
    repo = str(tmp_path / "repo")
    try:
        run(test_conn, repository=repo, point="p1")
        first = time.time()
        writes2 = ["write -P 0x22 1M 1M", "write -z 3M 64k"]
        writes3 = ["write -P 0x33 8M 2M"]
        add_incremental(repo, "p2", "p1", writes2, first + 10)
        add_incremental(repo, "p3", "p2", writes3, first + 20)
        expected2 = str(tmp_path / "expected2.qcow2")
        subprocess.run(["cp", vda, expected2], check=True)
        qemu_io(expected2, "qcow2", *writes2)
        yield dict(repo=repo, vda=vda, expected2=expected2, first=first, tmp=tmp_path)
    finally:
        dom.undefine()
        for other in test_conn.listAllDomains(0):
            if other.name().startswith("u-rst-"):
                other.undefine()
        pool = test_conn.storagePoolLookupByName(POOL)
        for vol in pool.listAllVolumes(0):
            if vol.name().startswith("u-rst-"):
                vol.delete(0)


def info(repo, **kw):
    ctx = Context(params=dict(dict(repository=repo, vm=None, verify=False, fail_on_problems=False), **kw))
    return gather_backup_info(ctx)


def test_catalog_and_verify(chain):
    found = info(chain["repo"], verify=True)
    assert [v["name"] for v in found["vms"]] == [VM]
    points = found["vms"][0]["points"]
    assert [(p["name"], p["mode"], p["parent"], p["chain"]) for p in points] == [
        ("p1", "full", None, ["p1"]), ("p2", "incremental", "p1", ["p1", "p2"]),
        ("p3", "incremental", "p2", ["p1", "p2", "p3"])]
    assert found["problems"] == 0 and all(p["verified"] for p in points)


def corrupt(path, offset=1024 * 1024 + 100):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_verify_finds_a_corrupted_file_and_a_missing_parent(chain):
    corrupt(os.path.join(chain["repo"], VM, "p2", "vda.qcow2"), offset=300 * 1024)
    found = info(chain["repo"], vm=VM, verify=True)
    by_name = dict((p["name"], p) for p in found["vms"][0]["points"])
    assert by_name["p1"]["verified"]
    assert by_name["p2"]["problems"] == ["vda.qcow2 does not match its SHA-256 checksum (corrupted)"]
    assert "its chain is broken: point 'p2'" in by_name["p3"]["problems"][0]
    with pytest.raises(_repo.CorruptedError, match="damaged points"):
        info(chain["repo"], vm=VM, verify=True, fail_on_problems=True)
    _repo.remove_point(os.path.join(chain["repo"], VM, "p2"))
    found = info(chain["repo"], vm=VM, verify=True)
    p3 = found["vms"][0]["points"][-1]
    assert p3["chain"] is None and "needs its parent 'p2', which is missing" in p3["problems"][0]


def flatten(chain, point, fmt="raw"):
    src = _restore.load_backup_source(dict(repository=chain["repo"], vm=VM, point=point))
    qemu = _vm_import.QemuImg(run=run_argv)
    run_ = _restore.RestoreRun(Context(params=dict(tmp_dir=str(chain["tmp"])), run_command=run_argv), src, qemu, POOL)
    run_.format = fmt
    run_.volumes = [dict(target=d["target"], disk=d) for d in src.disks]
    try:
        run_.flatten()
        out = str(chain["tmp"] / ("flat-%s.%s" % (point, fmt)))
        os.rename(src.disks[0]["local"], out)
        return out
    finally:
        run_.remove_scratch()


def test_flatten_rebuilds_each_point(chain):
    assert compare(flatten(chain, "p1"), chain["vda"])
    assert compare(flatten(chain, "p2", "qcow2"), chain["expected2"])
    assert not compare(flatten(chain, "p3"), chain["expected2"])


def test_flatten_refuses_a_corrupted_file_and_a_foreign_backing_file(chain):
    corrupt(os.path.join(chain["repo"], VM, "p1", "vda.qcow2"))
    with pytest.raises(_repo.CorruptedError, match="point p1: vda.qcow2 does not match its SHA-256"):
        flatten(chain, "p2")
    outside = str(chain["tmp"] / "outside.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", outside, "64M"], check=True)
    # a point whose file (and manifest, rewritten to match) names a file outside the chain
    add_incremental(chain["repo"], "evil", "p3", ["write -P 0x44 0 64k"], chain["first"] + 30, backing=outside)
    shutil_free = [p for p in os.listdir(str(chain["tmp"])) if p.startswith("virtops-import-")]
    with pytest.raises(Exception, match="outside the storage pools|backing file"):
        _restore.RestoreRun.flatten(_fake_run(chain, "evil"))
    assert [p for p in os.listdir(str(chain["tmp"])) if p.startswith("virtops-import-")] == shutil_free


def _fake_run(chain, point):
    src = _restore.load_backup_source(dict(repository=chain["repo"], vm=VM, point=point))
    src.chain = [src.chain[-1]]  # only its own file: the corrupted p1 above is not read first
    run_ = _restore.RestoreRun(Context(params=dict(tmp_dir=str(chain["tmp"])), run_command=run_argv), src,
                               _vm_import.QemuImg(run=run_argv), POOL)
    run_.format = "raw"
    run_.volumes = [dict(target=d["target"], disk=d) for d in src.disks]
    return run_


@pytest.mark.parametrize("kw,point", [
    (dict(point="p2"), "p2"), (dict(), "p3"), (dict(before="1970-01-02"), None),
])
def test_choose_point(chain, kw, point):
    params = dict(repository=chain["repo"], vm=VM)
    params.update(kw)
    if point is None:
        with pytest.raises(Exception, match="no point was made at or before"):
            _restore.load_backup_source(params)
        return
    assert _restore.load_backup_source(params).point["name"] == point
    before = _repo.iso(chain["first"] + 15)
    assert _restore.load_backup_source(dict(repository=chain["repo"], vm=VM, before=before)).point["name"] == "p2"


def restore(conn, check=False, **kw):
    params = dict(uri="test:///default", repository=None, vm=VM, point=None, before=None, name=None, pool=POOL,
                  disk_format=None, state="present", force=False, tmp_dir=None)
    params.update(kw)
    ctx = Context(conn=conn, params=params, check_mode=check, run_command=run_argv)
    return reconcile(_restore.RestoreResource(ctx), check_mode=check, want_diff=True)


def test_restore_into_a_new_vm_four_runs(test_conn, chain, monkeypatch):
    uploads = chain["tmp"] / "uploads"
    uploads.mkdir()

    def fake_upload(conn, vol, path, sparse):
        subprocess.check_call(["cp", "--sparse=always", path, str(uploads / vol.name())])

    monkeypatch.setattr(_vm_import, "upload_file", fake_upload)
    name = "u-rst-copy"
    results = [restore(test_conn, check=check, repository=chain["repo"], point="p2", name=name, disk_format="raw")
               for check in (True, False, True, False)]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[1]["point"]["chain"] == ["p1", "p2"]
    assert compare(str(uploads / ("%s-vda.img" % name)), chain["expected2"])
    old = test_conn.lookupByName(VM)
    new = test_conn.lookupByName(name)
    assert new.UUIDString() != old.UUIDString()
    assert "%s-vda.img" % name in new.XMLDesc(0)


def test_restore_of_a_corrupted_point_makes_nothing(test_conn, chain, monkeypatch):
    monkeypatch.setattr(_vm_import, "upload_file", lambda *a: None)
    corrupt(os.path.join(chain["repo"], VM, "p3", "vda.qcow2"), offset=300 * 1024)
    with pytest.raises(_repo.CorruptedError, match="point p3: vda.qcow2 does not match its SHA-256"):
        restore(test_conn, repository=chain["repo"], name="u-rst-bad")
    assert [d.name() for d in test_conn.listAllDomains(0) if d.name().startswith("u-rst-")] == []
    assert [v.name() for v in test_conn.storagePoolLookupByName(POOL).listAllVolumes(0) if v.name().startswith("u-rst-")] == []


def test_qcow2_version_2_disks_get_no_checkpoint(test_conn, tmp_path):
    old = str(tmp_path / "old.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", old, "16M"], check=True)
    dom = test_conn.defineXML(domain_xml("virtops-bk-old", [("vda", old, "qcow2")]))
    try:
        result = run(test_conn, check=True, vm="virtops-bk-old", repository=str(tmp_path / "repo"))
        assert result["point"]["mode"] == "full"
        source = __import__("ansible_collections.virtops.libvirt.plugins.module_utils._backup.backup",
                            fromlist=["read_source"]).read_source(test_conn, "virtops-bk-old",
                                                                  _vm_import.QemuImg(run=run_argv))
        assert source["old_qcow2"] == ["vda"] and not source["qcow2"]
        facts_ = dict(active=True, qcow2=False, old_qcow2=["vda"], uuid="u", checkpoints=[], targets=[], points=[])
        from ansible_collections.virtops.libvirt.plugins.module_utils._backup.params import chain_problem
        assert "qcow2 version 2" in chain_problem(facts_)
    finally:
        dom.undefine()


def test_snapshot_revert_is_refused_while_checkpoints_exist():
    from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import checks as _snapshot_checks

    class Checkpoint:
        def getName(self):
            return "virtops-backup-p3"

    class Dom:
        def __init__(self, checkpoints):
            self.checkpoints = checkpoints

        def listAllCheckpoints(self, _flags):
            if self.checkpoints is None:
                raise libvirt.libvirtError("this function is not supported by the connection driver")
            return self.checkpoints

    class Conn:
        def __init__(self, dom):
            self.dom = dom

        def lookupByName(self, _name):
            return self.dom

    with pytest.raises(ConflictError, match="has checkpoint.*virtops-backup-p3.*refuses to revert"):
        _snapshot_checks.refuse_revert_with_checkpoints(Conn(Dom([Checkpoint()])), "web1", "s1")
    _snapshot_checks.refuse_revert_with_checkpoints(Conn(Dom([])), "web1", "s1")
    _snapshot_checks.refuse_revert_with_checkpoints(Conn(Dom(None)), "web1", "s1")


FULL_SCRIPT = r"""
import json, os, subprocess, sys
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.backup import BackupResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

def run_argv(argv, **_):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode(), p.stderr.decode()

image, repo = sys.argv[1], sys.argv[2]
conn = Connection("test:///default").open()
dom = conn.defineXML("<domain type='test'><name>virtops-bk-full</name><memory unit='MiB'>64</memory>"
                     "<os><type>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' "
                     "type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk></devices></domain>" % image)
params = dict(uri="test:///default", vm="virtops-bk-full", repository=repo, point="p1", mode="auto", full_every=None,
              full_max_age_days=None, compression="none", quiesce=False, retention=None, state="present", timeout=None,
              progress_file=None)
out = {}
try:
    reconcile(BackupResource(Context(conn=conn, params=params, run_command=run_argv)))
    out["error"] = None
except VirtopsError as exc:
    out.update(error=exc.kind, msg=exc.msg)
out["left"] = sorted(os.path.relpath(os.path.join(d, n), repo) for d, ds, fs in os.walk(repo) for n in ds + fs)
dom.undefine()
print(json.dumps(out))
"""


def test_a_full_repository_is_left_as_it_was(tmp_path):
    """A 4 MiB tmpfs, mounted in a private mount namespace (unshare) only the child process sees."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"):
        pytest.skip("needs root and unshare to mount a small file system in a private mount namespace")
    image = str(tmp_path / "vda.qcow2")
    with open(str(tmp_path / "noise"), "wb") as handle:
        handle.write(os.urandom(12 * MiB))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(tmp_path / "noise"), image], check=True)
    small = tmp_path / "small"
    small.mkdir()
    script = tmp_path / "full.py"
    script.write_text(FULL_SCRIPT)
    import sys
    shell = "mount -t tmpfs -o size=4m virtops-bk-full %s && mkdir %s/repo && exec %s %s %s %s/repo" % (
        small, small, sys.executable, script, image, small)
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ), check=False)
    if proc.returncode != 0 and b"mount" in proc.stderr and not proc.stdout:
        pytest.skip("cannot mount a tmpfs here: %s" % proc.stderr.decode())
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert out["error"] == "no_space", out
    assert "is full" in out["msg"] and "No space left on device" in out["msg"]
    assert out["left"] == ["virtops-bk-full"], out  # the VM's directory, empty: no temporary point left
    assert os.listdir(str(small)) == []  # the tmpfs was never visible here


def test_restore_in_place_needs_force_and_keeps_the_uuid(test_conn, chain, monkeypatch):
    monkeypatch.setattr(_vm_import, "upload_file", lambda conn, vol, path, sparse: None)
    uuid = test_conn.lookupByName(VM).UUIDString()
    untouched = restore(test_conn, repository=chain["repo"], point="p1")
    assert not untouched["changed"] and untouched["point"] is None  # the VM exists: nothing without force
    done = restore(test_conn, repository=chain["repo"], point="p1", force=True)
    assert done["changed"] and done["replaced"] and done["point"]["name"] == "p1"
    dom = test_conn.lookupByName(VM)
    assert dom.UUIDString() == uuid
    assert "/default-pool/%s-vda.qcow2" % VM in dom.XMLDesc(0)
    test_conn.storagePoolLookupByName(POOL).storageVolLookupByName("%s-vda.qcow2" % VM).delete(0)


def test_the_kinds_validate_what_the_modules_take():
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup.kind import BACKUP
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup.restore_kind import BACKUP_RESTORE

    def validate(kind, given):
        kwargs = dict((k, v) for k, v in kind.module_kwargs().items() if k != "supports_check_mode")
        return ArgumentSpecValidator(**kwargs).validate(given)

    result = validate(BACKUP, dict(vm="a", repository="/r", retention=dict(keep_last=2)))
    assert not result.error_messages
    assert result.validated_parameters["mode"] == "auto" and result.validated_parameters["compression"] == "none"
    assert BACKUP.needs_libvirt(dict(state="present")) and not BACKUP.needs_libvirt(dict(state="pruned"))
    assert validate(BACKUP_RESTORE, dict(repository="/r", vm="a", point="p", before="2026-12-01")).error_messages
    assert not validate(BACKUP_RESTORE, dict(repository="/r", vm="a", point="p")).error_messages


class FakeJobDomain:
    """jobStats of a backup job that runs for ``polls`` polls and then ends as ``completed`` says."""

    def __init__(self, polls, completed):
        self.polls = polls
        self.completed = completed
        self.seen = []

    def name(self):
        return "web1"

    def jobStats(self, flags=0):
        if flags:
            return self.completed
        if self.polls > 0:
            self.polls -= 1
            return dict(type=2, operation=9, disk_processed=50, disk_total=100)
        return dict(type=0)


@pytest.mark.parametrize("completed,error", [
    (dict(type=3, operation=9, success=True), None),
    (dict(type=4, operation=9, success=False, errmsg="No space left on device"), "No space left on device"),
    (dict(type=5, operation=9, success=False), "failed"),
    (dict(type=3, operation=1, success=True), "vanished"),
])
def test_job_wait(completed, error):
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
    from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError
    dom = FakeJobDomain(3, completed)
    sleeps, progress = [], []
    if error is None:
        _job.wait(dom, lambda done, total: progress.append((done, total)), sleep=sleeps.append)
        assert progress == [(50, 100)] * 3
        assert sleeps == [0.02, 0.04, 0.08]
    else:
        with pytest.raises(BackendError, match=error):
            _job.wait(dom, sleep=sleeps.append)


def test_job_xml_lists_every_disk():
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
    xml = _job.backup_xml([("vda", "/r/x/vda.qcow2")], ["sda"], incremental="virtops-backup-p1")
    assert xml == ("<domainbackup mode=\"push\"><incremental>virtops-backup-p1</incremental><disks>"
                   "<disk name=\"vda\" backup=\"yes\" type=\"file\"><target file=\"/r/x/vda.qcow2\"/>"
                   "<driver type=\"qcow2\"/></disk><disk name=\"sda\" backup=\"no\"/></disks></domainbackup>")
    cp = _job.checkpoint_xml("virtops-backup-p2", ["vda"], ["sda"])
    assert "<disk name=\"vda\" checkpoint=\"bitmap\"/>" in cp and "<disk name=\"sda\" checkpoint=\"no\"/>" in cp


@pytest.mark.skipif(not os.path.exists("/usr/bin/virt-xml-validate"), reason="virt-xml-validate is not installed")
@pytest.mark.parametrize("kind", ["domainbackup", "domaincheckpoint"])
def test_job_xml_passes_libvirt_schemas(tmp_path, kind):
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
    if kind == "domainbackup":
        text = _job.backup_xml([("vda", "/r/x/vda.qcow2"), ("vdb", "/r/x/vdb.qcow2")], ["sda"], "virtops-backup-p1")
    else:
        text = _job.checkpoint_xml("virtops-backup-p2", ["vda", "vdb"], ["sda"])
    path = tmp_path / ("%s.xml" % kind)
    path.write_text(text)
    proc = subprocess.run(["/usr/bin/virt-xml-validate", str(path), kind], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()


def test_checkpoint_names_belong_to_their_repository():
    """Points of the same name in two repositories never share a checkpoint; only the own ones are dropped."""
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
    first, second = _job.checkpoint_name("daily", "/srv/bk"), _job.checkpoint_name("daily", "/mnt/offsite/bk")
    assert first != second
    assert first.startswith("virtops-backup-daily-") and len(first) == len("virtops-backup-daily-") + 8
    assert first == _job.checkpoint_name("daily", "/srv//bk/")
    assert _job.of_repository(first, "/srv/bk") and not _job.of_repository(second, "/srv/bk")
    assert not _job.of_repository("someone-elses", "/srv/bk")


class FakeCheckpoint(object):
    def __init__(self, dom, name):
        self.dom, self.name = dom, name

    def getName(self):
        return self.name

    def delete(self, flags):
        self.dom.names.remove(self.name)


class FakeCheckpointDomain(object):
    def __init__(self, names):
        self.names = list(names)

    def name(self):
        return VM

    def listAllCheckpoints(self, flags):
        return [FakeCheckpoint(self, n) for n in self.names]

    def checkpointLookupByName(self, name, flags):
        return FakeCheckpoint(self, name)


def test_a_new_point_drops_only_its_own_repositorys_older_checkpoints(tmp_path):
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup.run import BackupRun
    from ansible_collections.virtops.libvirt.plugins.module_utils._tools.progress import Progress
    mine, other = str(tmp_path / "mine"), str(tmp_path / "other")
    names = [_job.checkpoint_name("p1", mine), _job.checkpoint_name("p1", other), "made-by-a-user"]
    dom = FakeCheckpointDomain(names)
    source = dict(dom=dom, active=True, qcow2=True, disks=[])
    run_ = BackupRun(None, None, dict(repository=mine, vm=VM), source, "p2", "incremental", "p1", Progress(None))
    dom.names.append(run_.checkpoint)
    run_.drop_old_checkpoints()
    assert run_.removed_checkpoints == [names[0]]
    assert sorted(dom.names) == sorted([names[1], "made-by-a-user", _job.checkpoint_name("p2", mine)])


def test_hashing_thread_hashes_every_file_and_keeps_its_error(tmp_path):
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup.run import Hashing
    (tmp_path / "a").write_bytes(b"x" * 3000000)
    files, seen = [dict(name="a"), dict(name="missing"), dict(name="never")], []
    hashing = Hashing(str(tmp_path), files, seen.append)
    hashing.start()
    hashing.join()
    assert files[0]["sha256"] == sha256_file(str(tmp_path / "a")) and sum(seen) == 3000000
    assert isinstance(hashing.error, OSError) and hashing.path == str(tmp_path / "missing")
    assert "sha256" not in files[1] and "sha256" not in files[2]


def test_job_wait_polls_every_tenth_of_a_second_at_most():
    from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
    sleeps = []
    _job.wait(FakeJobDomain(6, dict(type=3, operation=9, success=True)), sleep=sleeps.append)
    assert sleeps == [0.02, 0.04, 0.08, 0.1, 0.1, 0.1]
