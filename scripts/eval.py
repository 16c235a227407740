"""Same as `unet-eval`: score a checkpoint. All arguments are Hydra overrides."""

from unet.apps.evaluate import main

if __name__ == "__main__":
    main()
