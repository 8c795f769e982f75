"""Slots: how many jobs run where, with which environment (no GPU needed: counts are faked)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from backprop2lib.run.slots import default_cpu_jobs, detect_gpu_ids, plan_slots


def test_no_gpu_gives_cpu_workers_with_cuda_hidden_and_cores_split():
    slots = plan_slots(n_gpus=0, jobs_per_gpu=1, cpu_jobs=2, cores=2)
    assert [s.device for s in slots] == ["cpu", "cpu"]
    for slot in slots:
        assert slot.env["CUDA_VISIBLE_DEVICES"] == ""  # accidental GPU use must fail loudly
        assert slot.env["OMP_NUM_THREADS"] == "1"
        assert slot.env["MKL_NUM_THREADS"] == "1"


@pytest.mark.parametrize(("cpu_jobs", "cores", "workers", "threads"), [(1, 2, 1, "2"), (3, 8, 3, "2"), (4, 16, 4, "4")])
def test_cpu_threads_are_cores_divided_by_workers(cpu_jobs, cores, workers, threads):
    slots = plan_slots(0, 1, cpu_jobs, cores)
    assert len(slots) == workers
    assert {s.env["OMP_NUM_THREADS"] for s in slots} == {threads}
    assert {s.env["MKL_NUM_THREADS"] for s in slots} == {threads}


def test_cpu_workers_are_capped_at_the_core_count():
    slots = plan_slots(0, 1, cpu_jobs=8, cores=2)
    assert len(slots) == 2
    assert {s.env["OMP_NUM_THREADS"] for s in slots} == {"1"}


def test_one_gpu_one_job():
    slots = plan_slots(n_gpus=1, jobs_per_gpu=1, cpu_jobs=5, cores=16)
    assert [(s.device, s.env["CUDA_VISIBLE_DEVICES"]) for s in slots] == [("cuda:0", "0")]
    assert slots[0].env["OMP_NUM_THREADS"] == "16"


def test_one_gpu_shared_by_three_jobs():
    slots = plan_slots(n_gpus=1, jobs_per_gpu=3, cpu_jobs=1, cores=16)
    assert [s.device for s in slots] == ["cuda:0"] * 3
    assert {s.env["CUDA_VISIBLE_DEVICES"] for s in slots} == {"0"}
    assert {s.env["OMP_NUM_THREADS"] for s in slots} == {"5"}  # 16 // 3


def test_two_gpus_one_job_each():
    slots = plan_slots(n_gpus=2, jobs_per_gpu=1, cpu_jobs=1, cores=16)
    assert [(s.device, s.env["CUDA_VISIBLE_DEVICES"]) for s in slots] == [("cuda:0", "0"), ("cuda:1", "1")]


def test_two_gpus_three_jobs_each_round_robin():
    slots = plan_slots(n_gpus=2, jobs_per_gpu=3, cpu_jobs=1, cores=12)
    # Round-robin: the first two jobs land on different GPUs.
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "0", "1", "0", "1"]
    assert {s.env["OMP_NUM_THREADS"] for s in slots} == {"2"}


def test_gpu_ids_map_to_the_parents_visible_devices():
    slots = plan_slots(n_gpus=2, jobs_per_gpu=1, gpu_ids=["2", "3"])
    assert [(s.device, s.env["CUDA_VISIBLE_DEVICES"]) for s in slots] == [("cuda:0", "2"), ("cuda:1", "3")]


@pytest.mark.parametrize("kwargs", [dict(n_gpus=-1), dict(n_gpus=1, jobs_per_gpu=0), dict(n_gpus=0, cpu_jobs=0),
                                    dict(n_gpus=0, cores=0), dict(n_gpus=2, gpu_ids=["0"])])
def test_invalid_plans_are_rejected(kwargs):
    with pytest.raises(ValueError):
        plan_slots(**kwargs)


def test_default_cpu_jobs():
    assert default_cpu_jobs(n_notebooks=3, cores=2) == 2
    assert default_cpu_jobs(n_notebooks=1, cores=8) == 1
    assert default_cpu_jobs(n_notebooks=0, cores=8) == 1


@pytest.mark.parametrize(("value", "ids"), [("", []), ("0", ["0"]), ("0,1", ["0", "1"]), ("3, 1", ["3", "1"]),
                                            ("1,-1,2", ["1"]), ("GPU-abc", ["GPU-abc"])])
def test_detect_honours_cuda_visible_devices(value, ids):
    assert detect_gpu_ids({"CUDA_VISIBLE_DEVICES": value}, nvidia_smi="must-not-be-called") == ids


def test_detect_counts_nvidia_smi_lines(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-1)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-2)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_gpu_ids({}) == ["0", "1"]


def test_detect_without_nvidia_smi_means_no_gpu():
    assert detect_gpu_ids({}, nvidia_smi="no-such-nvidia-smi-binary") == []


def test_parent_never_imports_torch():
    # Planning must not create a CUDA context in the parent (it would pin memory on GPU 0).
    code = ("import sys, backprop2lib.run as r; r.plan_slots(len(r.detect_gpu_ids()), 1, 1, 1); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_threads_per_job_overrides_the_core_split():
    assert {s.env["OMP_NUM_THREADS"] for s in plan_slots(0, 1, cpu_jobs=1, cores=8, threads_per_job=1)} == {"1"}
    assert {s.env["MKL_NUM_THREADS"] for s in plan_slots(1, 2, cores=16, threads_per_job=3)} == {"3"}
    with pytest.raises(ValueError):
        plan_slots(0, 1, 1, 2, threads_per_job=0)
