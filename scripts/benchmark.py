"""Benchmark every upsampling method (and, with --peers, MONAI and smp U-Nets) on this machine.

python scripts/benchmark.py [--peers] [--size 256] [--batch-size 8] [--json out.json]
"""

from unet.apps.benchmark import main

if __name__ == "__main__":
    main()
