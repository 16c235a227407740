"""Same as `unet-check-data`: check a data config and print its summary. Arguments are Hydra overrides."""

from unet.apps.check_data import main

if __name__ == "__main__":
    main()
