"""Same as `unet-benchmark`: how fast each upsampling method trains and infers. All arguments are Hydra overrides."""

from unet.apps.benchmark import main

if __name__ == "__main__":
    main()
