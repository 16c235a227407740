"""Same as `unet-benchmark`: what this machine does, one benchmark per `mode`. All arguments are Hydra overrides."""

from unet.apps.benchmark import main

if __name__ == "__main__":
    main()
