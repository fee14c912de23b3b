"""ProtDeepResEstimate on a set of maps in real Scipion projects: one step per map run in
parallel threads (no queue), and the same run submitted through Scipion's queue machinery by a
project whose hosts.conf defines a local "queue" (a shell wrapper that runs the job script in
the background, prints a job id and logs each call).

Two 4-helix-bundle maps made in code (uniform 4 Å and 6.5 Å, 50×42×42 voxels), imported
together with pwem's ProtImportVolumes (→ SetOfVolumes) at a non-zero origin."""
import os
import shutil
import time

import numpy as np
import pytest
import pyworkflow as pw
from pyworkflow.protocol.constants import STATUS_FINISHED
from pyworkflow.protocol.launch import _checkJobStatus
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.viewer import MessageView, TextView

import scipion_helpers as H
from deepres_plugin import constants as C
from deepres_plugin.protocols import ProtDeepResEstimate
from deepres_plugin.protocols.protocol_estimate import SET_PREFIX
from deepres_plugin.tests.helpers import bundle_map

ORIGIN = (-12.5, 3.0, 40.25)
TRUTH = {"a_map.mrc": 4.0, "b_map.mrc": 6.5}  # uniform resolution of each map (Å)

pytestmark = pytest.mark.skipif(not H.shipped_weights(), reason="shipped weights missing")

# A local queue for hosts.conf: the wrapper logs its call, starts the job script detached
# (its own session: CANCEL kills the group) and answers like SLURM's sbatch.
QSUB = """#!/bin/bash
echo "$(date +%s) $*" >> "{log}"
setsid bash "$1" > "$1.out" 2>&1 < /dev/null &
echo "Submitted batch job $!"
"""
HOSTS = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = LocalShell
MANDATORY = 0
SUBMIT_PREFIX = job
SUBMIT_COMMAND = {qsub} %_(JOB_SCRIPT)s
SUBMIT_TEMPLATE = #!/bin/bash
    ### %_(JOB_NAME)s: %_(SCIPION_PROTOCOL)s, queue %_(JOB_QUEUE)s, %_(JOB_THREADS)d threads
    echo "job %_(JOB_NAME)s starts $(date)"
    %_(JOB_COMMAND)s
    echo "job %_(JOB_NAME)s ends $(date)"
CANCEL_COMMAND = kill -- -%_(JOB_ID)s
CHECK_COMMAND = ps -o stat= -p %_(JOB_ID)s
JOB_DONE_REGEX = Z
QUEUES = {{"default": {{}}}}
"""


def two_maps(out_dir):
    """(folder holding only a_map.mrc (4 Å) and b_map.mrc (6.5 Å), their shared mask)."""
    maps = os.path.join(out_dir, "maps")
    os.makedirs(maps, exist_ok=True)
    for k, (name, res) in enumerate(TRUTH.items()):
        mpath, kpath, _ = bundle_map(os.path.join(out_dir, name[0]), res, noise=0.05, seed=k)
        shutil.copy(mpath, os.path.join(maps, name))
    return maps, kpath


def import_set(test, folder):
    from pwem.protocols import ProtImportVolumes

    prot = test.newProtocol(ProtImportVolumes, filesPath=folder, filesPattern="*_map.mrc",
                            samplingRate=1.0, setOrigCoord=True, x=-ORIGIN[0], y=-ORIGIN[1],
                            z=-ORIGIN[2])
    test.launchProtocol(prot)
    return prot.outputVolumes


def check_outputs(test, est, inputs):
    """2 resolution maps with their input's id, voxel size and origin, medians near the
    truth (the bundle reads a little fine: 3.6 and 5.6 Å at 4 and 6.5 Å), summary table."""
    out = est.outputResolutions
    test.assertEqual(out.getSize(), 2)
    sources = {v.getObjId(): v.getFileName().replace(":mrc", "") for v in inputs.iterItems()}
    test.assertEqual(sorted(sources), sorted(v.getObjId() for v in out.iterItems()))
    rows = {r["name"]: r for r in est.getSummaryRows()}
    meds = {}
    for vol in out.iterItems():
        objId, median = vol.getObjId(), vol._deepres_median.get()
        test.assertEqual(os.path.basename(vol.getFileName()),
                         SET_PREFIX.format(objId) + C.ESTIMATE_MAP)
        test.assertEqual(vol._deepres_input.get(), sources[objId])
        test.assertAlmostEqual(vol.getSamplingRate(), 1.0)
        np.testing.assert_allclose(H.shifts(vol), ORIGIN, atol=1e-4)
        res, sampling, origin = H.read_mrc(vol.getFileName())
        np.testing.assert_allclose(origin, ORIGIN, atol=1e-3)  # the MRC header too
        test.assertAlmostEqual(median, float(np.median(res[res > 0])), places=3)
        name = next(n for n in TRUTH if sources[objId].endswith(n))
        meds[name] = median
        test.assertLess(abs(median - TRUTH[name]), 1.5, (name, median))
        row = rows[SET_PREFIX.format(objId).rstrip("_")]
        test.assertEqual((row["status"], row["map"]), ("ok", sources[objId]))
        test.assertAlmostEqual(row["median"], median, places=3)
        # run time: the estimate's total + reading + writing (its inner steps counted once)
        t = est._readJson(SET_PREFIX.format(objId))["timings"]
        test.assertAlmostEqual(row["seconds"], t["total_s"] + t["read_s"] + t["write_s"], 3)
    test.assertLess(meds["a_map.mrc"] + 1.0, meds["b_map.mrc"])  # 4 Å reads better
    csv = open(est._getExtraPath("summary.csv")).read().splitlines()
    test.assertEqual(len(csv), 3)
    test.assertTrue(csv[0].startswith("index,map,name,status"))
    test.assertIn("2 maps, model standard", " ".join(est.summary()))


def step_times(prot):
    """(start, end) of each estimate step, in step order."""
    return [(s.initTime.datetime(), s.endTime.datetime()) for s in prot.loadSteps()
            if s.funcName.get() == "estimateStep"]


class TestEstimateSetThreads(BaseTest):
    """A set of 2 maps, 3 Scipion threads (2 steps at once), a shared mask, no queue."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        folder, mask = two_maps(cls.getOutputPath("data"))
        cls.vols = import_set(cls, folder)
        cls.mask = H.import_mask(cls, mask, 1.0)
        cls.est = cls.newProtocol(ProtDeepResEstimate, inputVolume=cls.vols, mask=cls.mask,
                                  modelChoice=C.MODEL_STANDARD, numberOfThreads=3, useGpu=False)
        cls.launchProtocol(cls.est)

    def test_outputs_and_summary(self):
        check_outputs(self, self.est, self.vols)
        mask, _, _ = H.read_mrc(self.mask.getFileName())
        for vol in self.est.outputResolutions.iterItems():
            res, _, _ = H.read_mrc(vol.getFileName())
            np.testing.assert_array_equal(res > 0, mask > 0.5)

    def test_steps_ran_in_parallel(self):
        log = open(self.est.getStdoutLog()).read()
        self.assertIn("ThreadStepExecutor", log)
        (s1, e1), (s2, e2) = step_times(self.est)
        self.assertLess(max(s1, s2), min(e1, e2))  # both estimate steps were running at once

    def test_viewer_table_and_one_map(self):
        from deepres_plugin.viewers import DeepResEstimateViewer

        v = DeepResEstimateViewer(project=self.proj, protocol=self.est)
        v.setProtocol(self.est)
        d = v._getVisualizeDict()
        views = d["displayTable"]()
        self.assertIsInstance(views[0], TextView)
        self.assertEqual(views[0].getFileList(), [self.est._getExtraPath("summary.csv")])
        ids = sorted(vol.getObjId() for vol in self.est.outputResolutions.iterItems())
        v.mapId.set(ids[1])
        d["displayHistogram"]()
        self.assertTrue(os.path.isfile(self.est._getExtraPath(
            SET_PREFIX.format(ids[1]) + C.VIEW_HISTOGRAM)))
        d["displaySlices"]()
        self.assertTrue(os.path.isfile(self.est._getExtraPath(
            SET_PREFIX.format(ids[1]) + C.VIEW_SLICES.format(axis="z"))))
        v.mapId.set(999)
        views = d["displayHistogram"]()
        self.assertIsInstance(views[0], MessageView)
        self.assertIn("no map with id 999", views[0].getMessage())

    def test_validate_set(self):
        from deepres_plugin.backend.volume import Volume, write_volume

        pdb = H.import_structure(self, self.getOutputPath("data", "a", "bundle.cif"))
        prot = self.newProtocol(ProtDeepResEstimate, inputVolume=self.vols,
                                inputStructure=pdb)
        self.assertIn("with a single map only", " ".join(prot.validate()))
        small = write_volume(self.getOutputPath("small_mask.mrc"),
                             Volume(np.ones((8, 8, 8), np.float32), 1.0, (0.0, 0.0, 0.0)))
        prot = self.newProtocol(ProtDeepResEstimate, inputVolume=self.vols,
                                mask=H.import_mask(self, small, 1.0))
        errors = prot.validate()
        self.assertEqual(len([e for e in errors if "Mask box" in e]), 2, errors)
        self.assertTrue(all(e.startswith("Map ") for e in errors), errors)


class TestEstimateQueue(BaseTest):
    """The same set through a queue: hosts.conf of the project names a local submit wrapper;
    the whole protocol runs as one job (3 threads inside), automatic masks."""

    @classmethod
    def setUpClass(cls):
        from pyworkflow.project import Manager

        work = os.path.join(os.environ["SCIPION_TESTS_OUTPUT"], cls.__name__ + "_queue")
        os.makedirs(work, exist_ok=True)
        cls.submitted = os.path.join(work, "submitted.log")
        qsub = os.path.join(work, "qsub.sh")
        with open(qsub, "w") as fh:
            fh.write(QSUB.format(log=cls.submitted))
        os.chmod(qsub, 0o755)
        hosts = os.path.join(work, "hosts.conf")
        with open(hosts, "w") as fh:
            fh.write(HOSTS.format(qsub=qsub))
        # A project reads <project>/.config/<SCIPION_HOSTS>: a project-level copy only when
        # SCIPION_HOSTS is a bare name. With the usual absolute path createProject(hostsConf=…)
        # would copy over the global file. Here (and in the job, which inherits os.environ):
        saved = os.environ["SCIPION_HOSTS"], pw.Config.SCIPION_HOSTS
        cls.global_hosts = saved[1]

        def restore():
            os.environ["SCIPION_HOSTS"], pw.Config.SCIPION_HOSTS = saved

        cls.addClassCleanup(restore)
        os.environ["SCIPION_HOSTS"] = pw.Config.SCIPION_HOSTS = "hosts.conf"
        cls.proj = Manager().createProject(cls.__name__, hostsConf=hosts)  # copied into it
        cls.outputPath = cls.proj.path
        os.chdir(cls.proj.path)
        folder, _ = two_maps(cls.getOutputPath("data"))
        cls.vols = import_set(cls, folder)
        cls.est = cls.newProtocol(ProtDeepResEstimate, inputVolume=cls.vols,
                                  modelChoice=C.MODEL_STANDARD, numberOfThreads=3, useGpu=False)
        cls.est._useQueue.set(True)
        cls.est.setQueueParams(["default", {}])
        cls.proj.launchProtocol(cls.est)
        cls.job_id = int(cls.est.getJobIds()[0])  # what the wrapper printed
        deadline = time.time() + 400
        while cls.est.isActive() and time.time() < deadline:
            time.sleep(2)
            cls.proj._updateProtocol(cls.est)
        if not cls.est.isFinished():
            cls.printLastLogLines(cls.est)
        cls.job_states = [_checkJobStatus(cls.est.getHostConfig(), cls.job_id)]
        while cls.job_states[-1] != STATUS_FINISHED and time.time() < deadline:
            time.sleep(0.5)  # the job script's last lines run after the run is finished
            cls.job_states.append(_checkJobStatus(cls.est.getHostConfig(), cls.job_id))

    def test_finished_through_the_queue(self):
        self.assertTrue(self.est.isFinished(), (self.est.getStatus(),
                                                self.est.getErrorMessage()))
        self.assertTrue(self.est.useQueueForProtocol())
        calls = open(self.submitted).read().splitlines()
        self.assertEqual(len(calls), 1, calls)  # one job: the whole protocol
        script = calls[0].split()[1]
        self.assertTrue(script.endswith(f"job{self.est.strId()}.job"), script)
        text = open(os.path.join(self.proj.path, script)).read()
        self.assertIn("pw_protocol_run.py", text)
        self.assertIn("queue default, 3 threads", text)
        self.assertEqual(self.job_states[-1], STATUS_FINISHED)  # CHECK_COMMAND: job gone
        out = open(os.path.join(self.proj.path, script) + ".out").read()
        self.assertIn(f"job {self.est.strId()} ends", out)
        self.assertEqual([int(j) for j in self.est.getJobIds()], [self.job_id])
        # the project read its own copy of hosts.conf (the job, loading the project, too)
        own = os.path.join(self.proj.path, ".config", "hosts.conf")
        self.assertIn("NAME = LocalShell", open(own).read())
        self.assertNotIn("LocalShell", open(self.global_hosts).read())  # untouched
        self.assertEqual(self.est.getHostConfig().getQueueSystem().getName(), "LocalShell")

    def test_outputs(self):
        check_outputs(self, self.est, self.vols)
        for vol in self.est.outputResolutions.iterItems():  # automatic mask per map
            self.assertTrue(os.path.isfile(self.est._getExtraPath(
                SET_PREFIX.format(vol.getObjId()) + C.ESTIMATE_AUTOMASK)))
        self.assertFalse(self.est.hasAttribute("outputMask"))
