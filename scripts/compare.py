"""Same as `unet-compare`: train several upsampling methods and seeds, then write a report.

Its own keys are those of configs/compare.yaml; every other argument is a unet-train override.
"""

from unet.apps.compare import main

if __name__ == "__main__":
    main()
