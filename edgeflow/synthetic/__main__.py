"""``python -m edgeflow.synthetic [HEIGHT WIDTH]``: measure synthetic data generation speed.

Prints milliseconds per training pair (one thread; set OMP_NUM_THREADS=1 for a fair number)
with and without photometric augmentation, and per frame of a synthetic sequence.
"""

import sys
import time

from edgeflow.synthetic.generator import benchmark
from edgeflow.synthetic.sequence import SyntheticSequence


def main(argv) -> int:
    height, width = (int(argv[0]), int(argv[1])) if len(argv) >= 2 else (240, 320)
    for augment in (True, False):
        wall = benchmark(height, width, augment=augment)
        cpu = benchmark(height, width, augment=augment, clock=time.process_time)
        print(f"pair {width}x{height} augment={augment}: {wall:.2f} ms/sample wall, {cpu:.2f} ms CPU")
    seq = SyntheticSequence(height, width, seed=0)
    seq.pair(0)
    start, cpu = time.perf_counter(), time.process_time()
    for t in range(1, 51):
        seq.frame(t)
        seq.flow(t)
    wall, cpu = (time.perf_counter() - start) / 50 * 1e3, (time.process_time() - cpu) / 50 * 1e3
    print(f"sequence {width}x{height}: {wall:.2f} ms/frame wall, {cpu:.2f} ms CPU (frame + its flow)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
