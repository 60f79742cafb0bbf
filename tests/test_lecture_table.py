"""The lecture's CPU-vs-GPU table: its quoted rows, this machine's row, recorded GPU runs.

Assembled from small fake results in the benchmark's own shapes (and records written by
the benchmark's own JSON writer); the machine facts are parsed from small fake /proc and
nvidia-smi texts. No speed is asserted.
"""

import json
import os

import pytest

from jaxnets.benchmark import hardware, lecture, report, suite
from jaxnets.benchmark.gemm import GemmResult
from jaxnets.benchmark.timing import Stat

QUOTED = [  # the lecture's slide "CPU vs GPU", as its text gives it
    "| **CPU** (Intel Core i7-7700k) | 4 (8 threads with hyperthreading ) | 4.4 GHz | "
    "Shared with system | $339 |",
    "| **CPU** (Intel Core i7-6950X) | 10 (20 threads with hyperthreading ) | 3.5 GHz | "
    "Shared with system | $1723 |",
    "| **GPU** (NVIDIA Titan Xp) | 3840 | 1.6 GHz | 12 GB GDDR5X | $1200 |",
    "| **GPU** (NVIDIA GTX 1070) | 1920 | 1.68 GHz | 8 GB GDDR5 | $399 |",
]

CPU_FACTS = {"cores": 8, "threads": 16, "usable": 4, "clock_mhz": 3500.0, "clock_kind": "max",
             "tsc_mhz": None, "memory_bytes": 16 * 2**30}


def _stat(seconds):
    return Stat(seconds, seconds, seconds, 1)


def _gemm(backend, dtype, n, seconds):
    return GemmResult("jax", backend, dtype, n, _stat(seconds))


def _alexnet(dtype, batch, seconds, shape="227x227x3, 1000 classes"):
    return {"name": "alexnet", "preset": "alexnet", "what": f"AlexNet {shape}, batch {batch}",
            "dtype": dtype, "batch_size": batch, "steps_per_call": 1,
            "flops": {"forward": 1, "train": 3},
            "stats": {"jax_train": _stat(seconds), "jax_infer": _stat(seconds / 3)},
            "compile_seconds": 1.0, "first_step_seconds": 2.0, "final_loss": 1.0,
            "keras_note": None}


def _results(backend="cpu", dtype="float32", gemm=(), models=(), cpu_facts=CPU_FACTS,
             gpu_facts=(), date="2026-01-02 03:04"):
    devices = ["cpu:cpu"] if backend == "cpu" else ["gpu:Test GPU"]
    return {"machine": {"cpu": "Test CPU", "cpu_cores": 4, "cpu_facts": cpu_facts,
                        "gpu_facts": list(gpu_facts), "devices": devices, "backend": backend,
                        "versions": {}, "load_average_start": "0.10 0.20 0.30",
                        "load_average_end": "0.1", "date": date},
            "options": {"dtype": dtype, "batch_sizes": {}}, "host": "-", "threads": 4,
            "torch": False, "reps": 1, "failures": [], "gemm": list(gemm),
            "models": list(models)}


def _this_cpu():  # 2 * 1000^3 FLOPs in 10 ms = 200 GFLOP/s; batch 16 in 0.5 s = 32 images/s
    return _results(gemm=[_gemm("cpu", "float32", 1000, 0.01)],
                    models=[_alexnet("float32", 16, 0.5)])


def _record(directory, name, results):
    """A GPU run written as the benchmark writes it (report.write)."""
    report.write(results, str(directory), name)


def test_the_lectures_rows_are_quoted_cell_for_cell_and_cpus_come_first():
    table = lecture.table(_this_cpu(), None)
    assert [r.kind for r in table.rows] == ["CPU"] * 3 + ["GPU"] * 2
    lines = lecture.markdown_lines(table)
    for quoted in QUOTED:
        assert sum(line.startswith(quoted) for line in lines) == 1, quoted
    assert [r.price for r in table.rows if r.source != "the lecture"] == ["-"]  # never invented
    assert table.notes == ["No recorded GPU run in (none given)."]


def test_this_machines_row_is_what_it_measured():
    row = lecture.table(_this_cpu(), None).rows[2]
    assert (row.kind, row.name, row.dtype) == ("CPU", "Test CPU", "float32")
    assert row.gemm_gflops == pytest.approx(200.0)
    assert row.alexnet_images_per_sec == pytest.approx(32.0)
    assert (row.cores, row.clock, row.memory) == (
        "8 (16 threads), 4 usable", "3.50 GHz (max)", "16.0 GiB, shared with system")
    assert row.source == "this machine, 2026-01-02 03:04, load average 0.10 0.20 0.30"
    line = lecture.markdown_lines(lecture.Table([row], []))[4]
    assert "| 200 | 32.0 (batch 16) | float32 |" in line


@pytest.mark.parametrize("facts, clock", [
    ({**CPU_FACTS, "clock_mhz": None, "clock_kind": None, "tsc_mhz": 2596.1},
     "n/a (a VM; its TSC: 2.60 GHz)"),
    ({**CPU_FACTS, "clock_mhz": None, "clock_kind": None}, "n/a"),
    (None, "-"),  # a record older than hardware.py
])
def test_an_unknown_clock_is_not_invented(facts, clock):
    row = lecture.measured_rows(_results(cpu_facts=facts), "x")[0]
    assert row.clock == clock
    assert row.cores == ("4 usable" if facts is None else "8 (16 threads), 4 usable")
    assert row.gemm_gflops is None and row.alexnet_images_per_sec is None  # not measured


def test_an_alexnet_of_another_size_is_named_in_full():
    results = _results(models=[_alexnet("float32", 2, 0.1, shape="67x67x3, 10 classes")])
    line = lecture.markdown_lines(lecture.Table(lecture.measured_rows(results, "x"), []))[4]
    assert "20.0 (AlexNet 67x67x3, 10 classes, batch 2)" in line


def test_recorded_gpu_runs_fill_their_rows_and_leave_the_rest_empty(tmp_path):
    records = tmp_path / "experiments" / "benchmarks" / "gpu"
    records.mkdir(parents=True)
    smi = {"name": "Test GPU", "multiprocessors": 132, "max_sm_mhz": 1980.0,
           "memory_bytes": 141 * 2**30}
    _record(records, "gpu", _results(  # 2 * 4096^3 in 1 ms = 137,439 GFLOP/s
        "gpu", "float32", gemm=[_gemm("cpu", "float32", 1000, 0.002),
                                _gemm("gpu", "float32", 4096, 0.001)],
        models=[_alexnet("float32", 1024, 0.04)], gpu_facts=[smi], date="2026-11-30 19:19"))
    _record(records, "gpu_bfloat16", _results(  # an older record: no facts, no AlexNet
        "gpu", "bfloat16", gemm=[_gemm("cpu", "float32", 1000, 0.004),
                                 _gemm("gpu", "bfloat16", 4096, 0.0005)],
        cpu_facts=None, date="2026-11-30 19:17"))
    _record(records, "cpu_elsewhere", _this_cpu())  # not a GPU run: no row
    (records / "notes.json").write_text("[1, 2")     # not a record: no row

    rows = lecture.recorded_rows(str(records), relative_to=str(tmp_path))
    assert [(r.kind, r.dtype) for r in rows] == [("CPU", "float32"), ("GPU", "float32"),
                                                 ("GPU", "bfloat16")]
    host, f32, bf16 = rows  # one row for the host CPU of both records (the float32 one's)
    assert host.gemm_gflops == pytest.approx(1000.0) and host.alexnet_images_per_sec is None
    assert host.source == "`experiments/benchmarks/gpu/gpu.json`, 2026-11-30 19:19"
    assert (f32.name, f32.cores, f32.clock, f32.memory) == (
        "Test GPU", "132 SMs", "1.98 GHz (max SM)", "141 GiB")
    assert f32.gemm_gflops == pytest.approx(2 * 4096**3 / 0.001 / 1e9)
    assert f32.alexnet_images_per_sec == pytest.approx(1024 / 0.04)
    assert (bf16.cores, bf16.clock, bf16.memory, bf16.price) == ("-", "-", "-", "-")
    assert bf16.gemm_gflops == pytest.approx(2 * 4096**3 / 0.0005 / 1e9)
    assert bf16.alexnet_images_per_sec is None
    assert bf16.source.startswith("`experiments/benchmarks/gpu/gpu_bfloat16.json`, 2026-11-30")

    table = lecture.table(_this_cpu(), str(records), relative_to=str(tmp_path))
    assert [r.source for r in table.rows][2:4] == [
        "this machine, 2026-01-02 03:04, load average 0.10 0.20 0.30", host.source]
    assert table.rows[-2:] == [f32, bf16] and table.notes == []


def test_the_section_reuses_the_runs_figures_or_measures_its_own():
    """Tiny runs: with the gemm and models sections the table takes their numbers; alone,
    it measures GEMM and AlexNet training itself."""
    log = lambda line: None  # noqa: E731
    both = suite.run(suite.Options(sections=("gemm", "models", "lecture"), models=("alexnet",),
                                   tiny=True, torch="no", keras="no", gpu_records=None), log=log)
    row = next(r for r in both["lecture"].rows if r.source.startswith("this machine"))
    assert row.gemm_gflops == pytest.approx(report.gemm_peak(both, "cpu", "float32"))
    assert row.alexnet_images_per_sec == pytest.approx(
        report.model_numbers(both["models"][0], both)["train"]["jax"])
    assert both["lecture"].notes[0] == ("This machine's figures: from this run's gemm and "
                                        "models sections.")
    alone = suite.run(suite.Options(sections=("lecture",), tiny=True, torch="no", keras="no"),
                      log=log)
    assert "gemm" not in alone and "models" not in alone
    row = next(r for r in alone["lecture"].rows if r.source.startswith("this machine"))
    assert row.gemm_gflops > 0 and row.alexnet_images_per_sec > 0
    assert row.alexnet_what == "AlexNet 67x67x3, 10 classes, batch 2"
    assert alone["lecture"].notes[0] == ("This machine's figures: measured by this section: "
                                         "GEMM cpu float32, AlexNet training (1 repetition).")
    assert any(r.kind == "GPU" and r.source.startswith("`experiments/benchmarks/gpu/")
               for r in alone["lecture"].rows) == os.path.isdir(suite.GPU_RECORDS)
    text = report.markdown(alone)
    assert "## The lecture's CPU vs GPU table" in text
    assert json.loads(report.to_json(alone))["lecture"]["rows"][0]["name"] == (
        "Intel Core i7-7700k")


# -- the machine's facts ---------------------------------------------------------------

def _cpuinfo(sockets, cores, threads, mhz="3100.000", flags="fpu sse2"):
    blocks, n = [], 0
    for socket in range(sockets):
        for core in range(cores):
            for _ in range(threads // cores):
                blocks.append(f"processor\t: {n}\nphysical id\t: {socket}\ncore id\t\t: {core}\n"
                              f"cpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n")
                n += 1
    return "\n".join(blocks)


def test_cpuinfo_counts_cores_and_threads_and_sees_a_vm():
    assert hardware.parse_cpuinfo(_cpuinfo(2, 4, 8)) == {
        "threads": 16, "cores": 8, "mhz": 3100.0, "virtual": False}
    vm = hardware.parse_cpuinfo(_cpuinfo(1, 2, 2, flags="fpu hypervisor avx2"))
    assert vm == {"threads": 2, "cores": 2, "mhz": 3100.0, "virtual": True}
    assert hardware.parse_cpuinfo("processor : 0\n\nprocessor : 1\n")["cores"] is None
    assert hardware.parse_meminfo("MemTotal:       24683772 kB\nMemFree: 1 kB\n") == (
        24683772 * 1024)


@pytest.mark.parametrize("flags, max_khz, clock", [
    ("fpu", "3500000", (3500.0, "max", None)),
    ("fpu hypervisor", "3500000", (3500.0, "max", None)),  # cpufreq says it even in a VM
    ("fpu", None, (2600.0, "current", None)),
    ("fpu hypervisor", None, (None, None, 2600.0)),  # a VM without cpufreq: unknown clock
])
def test_cpu_facts_take_the_clock_only_from_where_it_is_known(tmp_path, flags, max_khz, clock):
    proc, sys_cpu = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    (proc / "cpuinfo").write_text(_cpuinfo(1, 2, 4, mhz="2600.0", flags=flags))
    (proc / "meminfo").write_text("MemTotal: 1048576 kB\n")
    if max_khz:
        (sys_cpu / "cpu0" / "cpufreq").mkdir(parents=True)
        (sys_cpu / "cpu0" / "cpufreq" / "cpuinfo_max_freq").write_text(max_khz + "\n")
    facts = hardware.cpu_facts(str(proc), str(sys_cpu))
    assert (facts["clock_mhz"], facts["clock_kind"], facts["tsc_mhz"]) == clock
    assert (facts["cores"], facts["threads"], facts["memory_bytes"]) == (2, 4, 2**30)


def test_nvidia_smi_fields_and_missing_ones():
    assert hardware.parse_nvidia_smi("NVIDIA H200, 143771, 1980\nNVIDIA H200, [N/A], [N/A]\n") == [
        {"name": "NVIDIA H200", "memory_bytes": 143771 * 2**20, "max_sm_mhz": 1980.0},
        {"name": "NVIDIA H200", "memory_bytes": None, "max_sm_mhz": None}]
    assert hardware.gpu_facts() == []  # the tests run on the CPU
