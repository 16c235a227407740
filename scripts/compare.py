"""Same as `unet-compare`: train several upsampling methods and seeds, then write a report.

Every argument is a Hydra override of configs/compare.yaml (unet-train's config plus compare's own keys).
"""

from unet.apps.compare import main

if __name__ == "__main__":
    main()
