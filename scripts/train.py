"""Same as `unet-train`: train a U-Net from the Hydra config. All arguments are Hydra overrides."""

from unet.apps.train import main

if __name__ == "__main__":
    main()
