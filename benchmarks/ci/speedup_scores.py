"""CI benchmark: SWE-fficiency SR and KernelBench fast_p over 20,000 tasks (optimizer/scoring).

Pure Python on purpose: numpy's SIMD paths depend on buffer addresses, so their instruction
counts vary where ASLR cannot be turned off (Docker); these counts are exact.
"""

import random

from optimizer.scoring import KernelResult, SRTask, aggregate_sr, fast_p

SR: list[SRTask] = []
KERNELS: list[KernelResult] = []


def setup() -> None:
    rng = random.Random(0)
    for _ in range(20000):
        ok = rng.random() < 0.8
        SR.append(SRTask(rng.uniform(0.5, 3) if ok else None, rng.uniform(1.1, 5), ok))
        KERNELS.append(KernelResult(ok, rng.uniform(1e-3, 1e-2), rng.uniform(1e-3, 1e-2)))


def workload() -> None:
    aggregate_sr(SR)
    for p in (0.0, 1.0, 1.5, 2.0):
        fast_p(KERNELS, p)
