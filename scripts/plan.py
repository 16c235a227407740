"""Same as `unet-plan`: print the training plan of a unet-train config. Arguments are Hydra overrides."""

from unet.apps.plan import main

if __name__ == "__main__":
    main()
