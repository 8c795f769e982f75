"""The runner on Dask, with real processes: a `dask scheduler` and `dask worker`s on 127.0.0.1, a
LocalCluster, TLS with certificates made here, a worker killed mid-notebook, a worker with other library
code, an unreachable scheduler, and stored models trained as runner jobs (locally and on workers)."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from backprop2lib.run import read_stamp, run_notebooks
from backprop2lib.run.cluster import ClusterError, ClusterOptions, library_stamp, slurm_cluster
from backprop2lib.run.runner import estimate_seconds, format_table, longest_first
from backprop2lib.store import status

from .test_runner import child_env, write_notebook

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parents[1]
DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
CLAIM = "# NBVAL_CHECK_OUTPUT\nfrom backprop2lib.profiles import resolve_profile\nprint('claim:', resolve_profile(profile).name, 6 * 7)"
SLEEPY = "import time\nfor _ in range(40):\n    time.sleep(0.5)\nprint('slept')"


def claim_outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return ["".join(o.get("text", "") for o in cell.get("outputs", []))
            for cell in nb.cells if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source]


class Processes:
    """Scheduler and workers started for a test, killed at its end."""

    def __init__(self, tmp: Path):
        self.tmp, self.procs = tmp, []

    def start(self, command: list[str], env: dict | None = None, name: str = "proc") -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env or child_env(), cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def scheduler(self, *tls: str) -> str:
        file = self.tmp / f"scheduler-{len(self.procs)}.json"
        protocol = ["--protocol", "tls"] if tls else []
        self.start([*DASK, "--host", "127.0.0.1", "--port", "0", "--no-dashboard", *protocol, *tls,
                    "--scheduler-file", str(file)], name="scheduler")
        deadline = time.time() + 60
        while time.time() < deadline:
            if file.exists():
                try:
                    import json

                    return json.loads(file.read_text())["address"]
                except ValueError:
                    pass
            time.sleep(0.2)
        raise RuntimeError((self.tmp / "scheduler.log").read_text())

    def worker(self, address: str, name: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
        return self.start([*WORKER, address, "--nthreads", "1", "--no-nanny", "--name", name,
                           "--no-dashboard", *extra], env=env, name=name)

    def wait_for_workers(self, address: str, n: int, security=None) -> None:
        from distributed import Client

        with Client(address, timeout=60, security=security, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=90)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=30)


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path)
    yield procs
    procs.close()


def two_notebooks(folder: Path) -> list[Path]:
    return [write_notebook(folder / "01_first.ipynb", "import os\nprint('threads', os.environ['OMP_NUM_THREADS'])\n"
                           "print('malloc trim', os.environ.get('MALLOC_TRIM_THRESHOLD_'))", CLAIM),
            write_notebook(folder / "02_second.ipynb", "x = sum(range(10))", CLAIM.replace("6 * 7", "x"))]


def test_a_scheduler_with_two_workers_gives_the_local_runners_results(tmp_path, processes):
    address = processes.scheduler()
    processes.worker(address, "w1")
    processes.worker(address, "w2")
    processes.wait_for_workers(address, 2)
    notebooks = two_notebooks(tmp_path / "nb")
    local = run_notebooks(notebooks, profile="smoke", root=tmp_path, output_dir=tmp_path / "local",
                          log_dir=tmp_path / "local-logs", records_path=tmp_path / "local.json", progress=False)
    remote = run_notebooks(notebooks, profile="smoke", root=tmp_path, output_dir=tmp_path / "remote",
                           log_dir=tmp_path / "remote-logs", records_path=tmp_path / "remote.json", progress=False,
                           cluster=ClusterOptions(kind=None, scheduler=address))
    assert [r.ok for r in local] == [r.ok for r in remote] == [True, True], format_table(local + remote)
    assert {r.device for r in remote} <= {"cpu@w1", "cpu@w2"}
    for nb in notebooks:
        assert claim_outputs(tmp_path / "remote" / nb.name) == claim_outputs(tmp_path / "local" / nb.name)
        assert claim_outputs(tmp_path / "remote" / nb.name) != [""]
        # same stamp, and the stamp records the worker's device
        local_stamp = read_stamp(nbformat.read(tmp_path / "local" / nb.name, as_version=4))
        remote_stamp = read_stamp(nbformat.read(tmp_path / "remote" / nb.name, as_version=4))
        assert remote_stamp["stamp"] == local_stamp["stamp"] and remote_stamp["device"].startswith("cpu@w")
        log = (tmp_path / "remote-logs" / f"{nb.stem}.log").read_text()
        assert log.startswith(f"# {nb.name} on cpu@w") and "attempt 1" in log
    assert (tmp_path / "remote.json").exists()
    # the notebooks themselves are untouched by a smoke run: nothing was written next to them
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == ["01_first.ipynb", "02_second.ipynb"]


def test_a_local_cluster_and_the_command_line(tmp_path):
    notebooks = two_notebooks(tmp_path / "nb")
    env = child_env()
    done = subprocess.run(
        [sys.executable, "-m", "backprop2lib.run", *map(str, notebooks), "--profile", "paper", "--cluster", "local",
         "--workers", "2", "--root", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Dask: local cluster at tcp://127.0.0.1:" in done.stderr
    assert "2 ok, 0 failed (profile paper)" in done.stdout
    for nb in notebooks:  # paper writes back in place, stamped
        stamp = read_stamp(nbformat.read(nb, as_version=4))
        assert stamp["profile"] == "paper" and stamp["device"] in {"cpu@0", "cpu@1"}
    assert "claim: paper 42" in claim_outputs(notebooks[0])[0]
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_ for their workers; a job must not inherit it (it doubled a
    # torch chapter's wall time in system calls)
    outputs = "".join(o.get("text", "") for cell in nbformat.read(notebooks[0], as_version=4).cells
                      for o in cell.get("outputs", []))
    assert "threads 1" in outputs and "malloc trim None" in outputs


def test_a_worker_killed_mid_notebook_the_job_is_retried_once_elsewhere(tmp_path, processes):
    from distributed import Client

    address = processes.scheduler()
    workers = {name: processes.worker(address, name) for name in ("w1", "w2")}
    processes.wait_for_workers(address, 2)
    notebook = write_notebook(tmp_path / "nb" / "01_sleepy.ipynb", SLEEPY, CLAIM)
    outcome = {}

    def run():
        outcome["results"] = run_notebooks([notebook], profile="paper", root=tmp_path, progress=False,
                                           log_dir=tmp_path / "logs", cluster=ClusterOptions(kind=None, scheduler=address))

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    with Client(address, timeout=30, set_as_default=False) as client:
        deadline = time.time() + 120
        while killed is None and time.time() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            started = client.get_metadata(["backprop2-runner"], default=None)  # attempts, counted by the task
            if busy and started:
                time.sleep(2)  # the job process is running the notebook by now
                name = client.scheduler_info()["workers"][busy[0]]["name"]
                workers[str(name)].send_signal(signal.SIGKILL)
                killed = str(name)
            time.sleep(0.2)
    thread.join(timeout=300)
    assert killed is not None and not thread.is_alive()
    [result] = outcome["results"]
    assert result.ok and result.retried and result.retry_reason == "worker lost", format_table([result])
    assert result.device != f"cpu@{killed}"
    assert "retried: worker lost" in format_table([result])
    stamp = read_stamp(nbformat.read(notebook, as_version=4))
    assert stamp["device"] == result.device and "slept" in "".join(
        o.get("text", "") for cell in nbformat.read(notebook, as_version=4).cells for o in cell.get("outputs", []))


def test_a_worker_with_other_library_code_refuses_the_job(tmp_path, processes):
    copy = tmp_path / "other-src"
    shutil.copytree(Path(__import__("backprop2lib").__file__).parent, copy / "backprop2lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "backprop2lib" / "stats.py", "a") as file:
        file.write("\n# an edit the client does not have\n")
    assert library_stamp(copy / "backprop2lib") != library_stamp()
    address = processes.scheduler()
    env = {**child_env(), "PYTHONPATH": str(copy)}
    processes.worker(address, "other", env=env)
    processes.wait_for_workers(address, 1)
    notebook = write_notebook(tmp_path / "nb" / "01_x.ipynb", "print(1)")
    [result] = run_notebooks([notebook], profile="smoke", root=tmp_path, output_dir=tmp_path / "out", progress=False,
                             cluster=ClusterOptions(kind=None, scheduler=address))
    assert not result.ok and result.error_name == "LibraryMismatch"
    assert library_stamp()[:16] in result.error_message and library_stamp(copy / "backprop2lib")[:16] in result.error_message
    assert not (tmp_path / "out" / "01_x.ipynb").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_scheduler_is_a_clear_error_in_bounded_time(tmp_path):
    notebook = write_notebook(tmp_path / "01_x.ipynb", "print(1)")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.perf_counter()
    with pytest.raises(ClusterError, match=f"could not reach the Dask scheduler at {address} within 3 s"):
        run_notebooks([notebook], profile="smoke", root=tmp_path, progress=False,
                      cluster=ClusterOptions(kind=None, scheduler=address, connect_timeout=3))
    assert time.perf_counter() - started < 30
    done = subprocess.run([sys.executable, "-m", "backprop2lib.run", str(notebook), "--profile", "smoke", "--scheduler",
                           address, "--connect-timeout", "3", "--root", str(tmp_path)],
                          capture_output=True, text=True, env=child_env(), timeout=120)
    assert done.returncode == 1 and f"could not reach the Dask scheduler at {address}" in done.stderr


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and one certificate for 127.0.0.1 signed by it (scheduler, workers and client share it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backprop2 test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return paths


def test_tls_scheduler_and_worker_run_a_notebook_and_refuse_plain_tcp(tmp_path, processes):
    from distributed.security import Security

    ca, cert, key = make_certificates(tmp_path)
    tls = ["--tls-ca-file", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)]
    address = processes.scheduler(*tls)
    assert address.startswith("tls://127.0.0.1:")
    processes.worker(address, "secure", *tls)
    processes.wait_for_workers(address, 1, security=Security(tls_ca_file=str(ca), tls_client_cert=str(cert),
                                                             tls_client_key=str(key), require_encryption=True))
    notebook = write_notebook(tmp_path / "nb" / "01_x.ipynb", CLAIM)
    [result] = run_notebooks([notebook], profile="smoke", root=tmp_path, output_dir=tmp_path / "out", progress=False,
                             cluster=ClusterOptions(kind=None, scheduler=address, tls_ca_file=ca, tls_cert=cert,
                                                    tls_key=key))
    assert result.ok and result.device == "cpu@secure", format_table([result])
    plain = address.replace("tls://", "tcp://")
    started = time.perf_counter()
    with pytest.raises(ClusterError, match="could not reach the Dask scheduler"):
        run_notebooks([notebook], profile="smoke", root=tmp_path, output_dir=tmp_path / "out2", progress=False,
                      cluster=ClusterOptions(kind=None, scheduler=plain, connect_timeout=5))
    assert time.perf_counter() - started < 60
    with pytest.raises(ValueError, match="all three"):
        ClusterOptions(kind=None, scheduler=address, tls_ca_file=ca)


def test_gpu_workers_take_the_jobs_one_gpu_unit_each(tmp_path, processes):
    # No GPU here: a worker that *advertises* GPU=1 stands in for a GPU machine; jobs must go to it
    # alone, one at a time, and be told their device; the CPU-only worker gets none.
    address = processes.scheduler()
    processes.worker(address, "gpu-box", "--resources", "GPU=1", env={**child_env(), "CUDA_VISIBLE_DEVICES": "0"})
    processes.worker(address, "cpu-box")
    processes.wait_for_workers(address, 2)
    notebooks = two_notebooks(tmp_path / "nb")
    results = run_notebooks(notebooks, profile="smoke", root=tmp_path, output_dir=tmp_path / "out", progress=False,
                            cluster=ClusterOptions(kind=None, scheduler=address))
    assert all(r.ok for r in results), format_table(results)
    assert [r.device for r in results] == ["cuda:0@gpu-box"] * 2


def provider_env(store: Path) -> dict[str, str]:
    return {"BACKPROP2_STORE_PROVIDERS": "store.tiny_provider", "BACKPROP2_STORE": str(store),
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def test_stored_models_train_as_runner_jobs_locally_and_on_workers(tmp_path, processes, monkeypatch):
    from store.tiny_provider import trained_models

    for key, value in provider_env(tmp_path / "unused").items():
        monkeypatch.setenv(key, value)  # job processes resolve the names through the same providers
    specs = trained_models("paper")
    local_store, remote_store = tmp_path / "local-store", tmp_path / "remote-store"
    results = run_notebooks([], profile="paper", root=tmp_path, models=specs, store_root=local_store,
                            progress=False, log_dir=tmp_path / "logs")
    assert [(r.notebook.name, r.ok, r.kind) for r in results] == [(s.name, True, "trained-model") for s in specs], \
        format_table(results)
    assert all(status(spec, local_store) == "fresh" for spec in specs)

    address = processes.scheduler()
    worker_env = {**child_env(), **provider_env(tmp_path / "worker-default-store")}
    processes.worker(address, "w1", env=worker_env)
    processes.wait_for_workers(address, 1)
    results = run_notebooks([], profile="paper", root=tmp_path, models=specs, store_root=remote_store, progress=False,
                            log_dir=tmp_path / "remote-logs", cluster=ClusterOptions(kind=None, scheduler=address))
    assert all(r.ok and r.device == "cpu@w1" for r in results), format_table(results)
    assert all(status(spec, remote_store) == "fresh" for spec in specs)  # files came back to the client
    assert not (tmp_path / "worker-default-store").exists()  # the worker trained in its private folder
    from backprop2lib.store import load

    for spec in specs:  # same seed, same code: the worker's model is the local one
        a, b = load(spec, local_store), load(spec, remote_store)
        assert all((a.state[k] == b.state[k]).all() for k in a.state)


def test_longest_first_from_records_then_stamps(tmp_path):
    from types import SimpleNamespace

    root = tmp_path
    a = write_notebook(root / "notebooks" / "01_a.ipynb", "print(1)")
    b = write_notebook(root / "notebooks" / "02_b.ipynb", "print(2)")
    c = write_notebook(root / "notebooks" / "03_c.ipynb", "print(3)")
    records = [{"notebook": "notebooks/01_a.ipynb", "profile": "paper", "status": "ok", "wall_time_s": 30.0},
               {"notebook": "notebooks/02_b.ipynb", "profile": "paper", "status": "ok", "wall_time_s": 300.0},
               {"notebook": "notebooks/02_b.ipynb", "profile": "smoke", "status": "ok", "wall_time_s": 3.0},
               {"notebook": "notebooks/03_c.ipynb", "profile": "paper", "status": "failed", "wall_time_s": 999.0}]
    assert estimate_seconds(a, "paper", records, root) == 30.0
    assert estimate_seconds(b, "smoke", records, root) == 3.0
    assert estimate_seconds(c, "paper", records, root) is None  # a failed run is no estimate
    nb = nbformat.read(c, as_version=4)
    nb.metadata["backprop2"] = {"stamp": "x", "profile": "paper", "wall_time_s": 100.0}
    nbformat.write(nb, c)
    assert estimate_seconds(c, "paper", records, root) == 100.0  # from its own stamp
    assert estimate_seconds(c, "smoke", [], root) is None  # a stamp of another profile says nothing
    jobs = [SimpleNamespace(name=n, estimate_s=e) for n, e in (("a", 30.0), ("b", 300.0), ("c", 100.0), ("new", None))]
    assert [j.name for j in longest_first(jobs)] == ["new", "b", "c", "a"]


def test_slurm_configuration_becomes_the_job_script(tmp_path):
    config = tmp_path / "slurm.toml"
    config.write_text('[slurm]\nqueue = "gpu"\nwalltime = "02:00:00"\ncores = 8\nmemory = "32GB"\njobs = 0\n'
                      'gpus_per_job = 2\naccount = "lab"\n')
    cluster = slurm_cluster(ClusterOptions(kind="slurm", config=config, jobs_per_gpu=2))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH -A lab", "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:2", "--resources GPU=4"):
        assert line in script, script
    config.write_text('[slurm]\nqueue = "cpu"\nwalltime = "1:00:00"\ncores = 4\nmemory = "8GB"\njobs = 0\nnodes = 3\n')
    with pytest.raises(ClusterError, match="unknown \\[slurm\\] key\\(s\\) nodes"):
        slurm_cluster(ClusterOptions(kind="slurm", config=config))
    config.write_text('[slurm]\nqueue = "cpu"\n')
    with pytest.raises(ClusterError, match="lacks walltime, cores, memory, jobs"):
        slurm_cluster(ClusterOptions(kind="slurm", config=config))
    with pytest.raises(ClusterError, match="file not found"):
        slurm_cluster(ClusterOptions(kind="slurm", config=tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="configuration file is required"):
        ClusterOptions(kind="slurm")
    with pytest.raises(ValueError, match="expected one of local, slurm"):
        ClusterOptions(kind="kubernetes")


def test_threads_are_sized_from_the_cores_free_when_a_job_starts():
    from backprop2lib.run.runner import _Launcher
    from backprop2lib.run.slots import Slot

    launcher = _Launcher([Slot("cpu"), Slot("cpu")], "smoke", 10, 10, cores=4, waiting=3)
    launcher.free.get()  # a slot taken, as run() does
    first = launcher._take_threads()  # 4 free cores, 2 slots could start now with 3 jobs waiting: 2 each
    launcher.free.get()
    second = launcher._take_threads()  # 2 cores left for this one
    assert (first, second) == (2, 2)
    launcher.cores_busy -= first  # the first job ends; the last job starts alone next to the second
    launcher.free.put(Slot("cpu"))
    launcher.free.get()
    assert launcher._take_threads() == 2
    launcher = _Launcher([Slot("cpu")] * 2, "smoke", 10, 10, cores=2, waiting=1)
    launcher.free.get()
    assert launcher._take_threads() == 2  # one job left and both cores free: it gets both
    launcher = _Launcher([Slot("cpu")] * 2, "smoke", 10, 10, cores=2, waiting=5, threads_per_job=1)
    launcher.free.get()
    assert launcher._take_threads() == 1  # fixed by the caller
